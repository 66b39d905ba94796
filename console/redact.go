package console

import (
	"net/url"
	"regexp"
	"strings"
)

// Dead-letter reasons name the fetch URL that failed, which may hold a
// secret: a password in its user info, or a token in its query. The
// console masks both wherever it shows a reason or a stored entry.

var urlRE = regexp.MustCompile(`https?://[^\s"'<>\\]+`)

// secretParam reports whether a query parameter's name looks like it holds
// a credential.
func secretParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"token", "key", "secret", "pass", "pwd", "auth", "sig", "credential", "session"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

const mask = "xxxxx"

// redact masks the credentials of every URL in s.
func redact(s string) string {
	return urlRE.ReplaceAllStringFunc(s, func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			return raw
		}
		changed := false
		if u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), mask)
				changed = true
			}
		}
		if u.RawQuery != "" {
			q := u.Query()
			for name := range q {
				if secretParam(name) {
					for i := range q[name] {
						q[name][i] = mask
					}
					changed = true
				}
			}
			if changed {
				u.RawQuery = q.Encode()
			}
		}
		if !changed {
			return raw
		}
		return u.String()
	})
}

// redactStored is redact for a stored entry's JSON, whose encoder wrote
// '&' as \u0026: shown as '&', so that a query is seen and masked whole.
func redactStored(s string) string {
	return redact(strings.ReplaceAll(s, `\u0026`, "&"))
}
