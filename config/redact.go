package config

import (
	"net/url"
	"regexp"
)

// userInfoRE matches the user info of a URL that does not parse.
var userInfoRE = regexp.MustCompile(`(//[^:/@]*:)[^@/]*@`)

// RedactURL is u with its password, if any, replaced by "xxxxx" (a lone user
// info too: go-redis reads it as the password), for messages and logs.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return userInfoRE.ReplaceAllString(u, "${1}xxxxx@") // mask what looks like one
	}
	if p.User == nil {
		return u
	}
	if _, has := p.User.Password(); has {
		p.User = url.UserPassword(p.User.Username(), "xxxxx")
	} else if p.User.Username() != "" {
		p.User = url.User("xxxxx")
	}
	return p.String()
}
