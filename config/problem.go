package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong (or, in Config.Warnings, deprecated) in a
// configuration, located as precisely as the loader can.
type Problem struct {
	// File is the configuration file.
	File string
	// Path locates the value, e.g. "watchers[0].rules[1].make[0].queue";
	// empty for the file as a whole.
	Path string
	// Rule is the name of the rule concerned, when there is one.
	Rule string
	// Message says what is wrong.
	Message string
	// Err is the error the problem comes from, when there is one (a file
	// that cannot be read, a parser's syntax error), so that errors.Is and
	// errors.As see it through Problems. Nil for problems of the content.
	Err error
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Path != "" {
		b.WriteString(": ")
		b.WriteString(p.Path)
	}
	if p.Rule != "" {
		fmt.Fprintf(&b, " (rule %q)", p.Rule)
	}
	b.WriteString(": ")
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found in a configuration. As an error it lists
// them one per line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the underlying errors of the problems that have one, so that
// errors.Is(err, fs.ErrNotExist) tells a missing file from a broken one.
func (ps Problems) Unwrap() []error {
	var errs []error
	for _, p := range ps {
		if p.Err != nil {
			errs = append(errs, p.Err)
		}
	}
	return errs
}

// RulePath is the Path of a rule's field, shared with package rules so that
// both report locations the same way.
func RulePath(watcher, rule int, field string) string {
	p := fmt.Sprintf("watchers[%d].rules[%d]", watcher, rule)
	if field != "" {
		p += "." + field
	}
	return p
}
