package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// CheckRedisURL reports what makes a Redis URL impossible to use, whatever
// the server: a URL that does not parse, an address no dial can reach (a
// port outside 1-65535, a host name that is not one), a database that is
// not a number, a cluster seed (addr=) of the same kinds. It reads no
// file and resolves no name: a host that does not exist yet is not its
// business. unix:// URLs are only parsed.
func CheckRedisURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(raw, "@") {
			// The parser's words may quote a piece of the password.
			return errors.New("does not parse (are the special characters of the user and password %-encoded?)")
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("does not parse: %v", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "redis", "rediss":
	case "unix":
		return nil
	default:
		return fmt.Errorf("must start with redis://, rediss:// or unix://")
	}
	if u.Host != "" {
		host, port := u.Hostname(), u.Port()
		if port == "" && strings.HasSuffix(u.Host, ":") {
			return fmt.Errorf("the port after %q is empty", host)
		}
		if err := checkHostPort(host, port, false); err != nil {
			return err
		}
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return fmt.Errorf("the database %q (the path) must be a number like /0", db)
		}
	}
	for _, a := range u.Query()["addr"] {
		if err := CheckAddr(a); err != nil {
			return fmt.Errorf("cluster node addr=%s: %w", a, err)
		}
	}
	return nil
}

// CheckAddr reports a Redis address "host:port" that no dial can reach:
// not host:port, a port outside 1-65535, a host that is not a name nor an
// IP address.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if port == "" {
		return fmt.Errorf("%q has no port", addr)
	}
	return checkHostPort(host, port, false)
}

// CheckListenAddr reports an address to listen on, "host:port", that no
// listener can use (port 0 means any free port; the host may be empty).
func CheckListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (like 127.0.0.1:9464 or :9464)", addr)
	}
	return checkHostPort(host, port, true)
}

// checkHostPort checks a host (empty allowed) and a port (empty allowed:
// the default applies); anyPort accepts port 0.
func checkHostPort(host, port string, anyPort bool) error {
	if port != "" {
		n, err := strconv.Atoi(port)
		least := 1
		if anyPort {
			least = 0
		}
		if err != nil || n < least || n > 65535 {
			return fmt.Errorf("port %q is not a port number (%d to 65535)", port, least)
		}
	}
	if host == "" || net.ParseIP(strings.SplitN(host, "%", 2)[0]) != nil {
		return nil
	}
	if !validHostName(host) {
		return fmt.Errorf("host %q is not a host name nor an IP address", host)
	}
	return nil
}

// validHostName accepts dot-separated labels of letters, digits, '-' and
// '_' (container names use it), each 1 to 63 bytes, 253 in all; a final
// dot is allowed.
func validHostName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
