package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// A Redis URL may hold a password (redis://user:password@host): whatever
// resc prints of one goes through redactedURL.

var userInfoRE = regexp.MustCompile(`(//[^:/@]*:)[^@/]*@`)

// redactedURL is u with its password, if any, replaced by "xxxxx".
func redactedURL(u string) string {
	if p, err := url.Parse(u); err == nil {
		if _, has := p.User.Password(); has {
			p.User = url.UserPassword(p.User.Username(), "xxxxx")
			return p.String()
		}
		return u
	}
	return userInfoRE.ReplaceAllString(u, "${1}xxxxx@") // unparsable: mask what looks like one
}

// badURL is the message of a Redis URL that does not parse, its password
// masked in the URL and in the error.
func badURL(u string, err error) string {
	msg := strings.ReplaceAll(err.Error(), u, redactedURL(u)) // url.Parse quotes the URL
	if p, perr := url.Parse(u); perr == nil {
		if pw, has := p.User.Password(); has && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return fmt.Sprintf("bad Redis URL %q: %s", redactedURL(u), msg)
}
