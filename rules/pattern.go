package rules

import (
	"net/url"
	"strings"
)

// InputTask is the variable holding the whole event.
const InputTask = "input_task"

// A piece is one part of a pattern as written: literal text or a ${var}.
type piece struct {
	lit   string // literal text when name is ""
	name  string // variable name
	start int    // byte offset of the piece in the pattern text
}

// split cuts a pattern into literal text and ${var} references, exactly as
// resc's regex \$\{([\w.]+)\} does (with \w = [0-9A-Za-z_]): whatever is not
// such a reference, a lone "$" or "${a-b}" for instance, is literal text.
// Adjacent literal text is merged into one piece.
func split(p string) []piece {
	var out []piece
	lit := 0 // start of the pending literal text
	for i := 0; i < len(p); {
		if p[i] != '$' || i+1 >= len(p) || p[i+1] != '{' {
			i++
			continue
		}
		j := i + 2
		for j < len(p) && isNameByte(p[j]) {
			j++
		}
		if j == i+2 || j >= len(p) || p[j] != '}' {
			i++ // literal "$"; a reference may still start at i+1
			continue
		}
		if lit < i {
			out = append(out, piece{lit: p[lit:i], start: lit})
		}
		out = append(out, piece{name: p[i+2 : j], start: i})
		i = j + 1
		lit = i
	}
	if lit < len(p) {
		out = append(out, piece{lit: p[lit:], start: lit})
	}
	return out
}

func isNameByte(c byte) bool {
	return c == '_' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// segKind says where the text of a segment comes from.
type segKind uint8

const (
	segLit   segKind = iota // the literal text
	segInput                // the whole event
	segGroup                // a capture group of on
	segFetch                // a property of a fetch result
)

// segment is one resolved part of a compiled pattern.
type segment struct {
	kind segKind
	// part is, in a fetch URL that escapes, the part of the URL the
	// segment lands in, which says how a variable's value is escaped.
	part urlPart
	// dots is, on the first variable of a path segment made of variables
	// only, how many variables it is made of: their values together must
	// not be "." or "..". 0 otherwise.
	dots  int32
	text  string // the literal text (segLit), the property name (segFetch), the variable name (others)
	group int    // the capture group number (segGroup)
}

// urlPart is a part of a URL, as far as escaping is concerned.
type urlPart uint8

const (
	partNone     urlPart = iota // not a URL, or one whose values are raw
	partScheme                  // before "://": no variable allowed
	partHost                    // the authority, up to the first "/", "?" or "#"
	partPath                    // the path, up to the first "?" or "#"
	partQuery                   // the query, up to the first "#"
	partFragment                // the fragment
)

// escape returns v escaped for the part: a value cannot end its part nor
// add one (a "/" in a path segment, a "&" or "#" in the query).
func (part urlPart) escape(v string) string {
	switch part {
	case partPath, partFragment:
		return url.PathEscape(v)
	case partQuery:
		return url.QueryEscape(v)
	case partHost:
		return hostEscape(v)
	}
	return v
}

// hostEscape escapes v for the authority of a URL: ASCII letters and digits
// and "-._~:" stay, every other byte is percent-encoded. So a value cannot
// end the host: a "/", "?", "#" or "@" becomes an escape that url.Parse
// refuses in a host (the fetch fails as an invalid URL), while a non-ASCII
// name becomes the escapes of its UTF-8 bytes, which url.Parse accepts as an
// internationalized host name.
func hostEscape(v string) string {
	n := 0
	for i := 0; i < len(v); i++ {
		if !hostByte(v[i]) {
			n++
		}
	}
	if n == 0 {
		return v
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(v)+2*n)
	for i := 0; i < len(v); i++ {
		if c := v[i]; hostByte(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

func hostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == ':'
}

// pattern is a compiled pattern: its segments, resolved at compile time so
// that expanding it does no lookup but the fetch result's properties.
type pattern struct {
	segs   []segment
	litLen int  // total length of the literal segments
	groups bool // some segment is a capture group
}

// direct reports whether the pattern is a single segment, whose value can be
// used as is, without building a string.
func (p *pattern) direct() bool { return len(p.segs) <= 1 }

// expansion holds what a pattern's variables are expanded from.
type expansion struct {
	event  string
	loc    []int             // submatch indices of on in event; nil when not needed
	result map[string]string // the fetch result, or nil
}

func (x *expansion) value(s *segment) string {
	switch s.kind {
	case segLit:
		return s.text
	case segInput:
		return x.event
	case segGroup:
		if 2*s.group+1 < len(x.loc) {
			if a, b := x.loc[2*s.group], x.loc[2*s.group+1]; a >= 0 {
				return x.event[a:b]
			}
		}
		return "" // a group that did not take part in the match
	default: // segFetch
		return x.result[s.text] // "" when the result lacks the property
	}
}

// size is the length of the expanded pattern.
func (x *expansion) size(p *pattern) int {
	n := p.litLen
	for i := range p.segs {
		if s := &p.segs[i]; s.kind != segLit {
			n += len(x.value(s))
		}
	}
	return n
}

// write appends the expanded pattern to b.
func (x *expansion) write(b *strings.Builder, p *pattern) {
	for i := range p.segs {
		b.WriteString(x.value(&p.segs[i]))
	}
}

// expand returns the expanded pattern as a new string (or, for a single
// segment, the value itself).
func (x *expansion) expand(p *pattern) string {
	switch len(p.segs) {
	case 0:
		return ""
	case 1:
		return x.value(&p.segs[0])
	}
	var b strings.Builder
	b.Grow(x.size(p))
	x.write(&b, p)
	return b.String()
}

// expandURL returns the expanded fetch URL p, each value escaped for the
// part of the URL it lands in. When the values of a path segment made of
// variables only are "." or "..", which would move the URL up or stay in
// its path, it returns the variables of that segment instead.
func (x *expansion) expandURL(p *pattern) (string, []segment) {
	var b strings.Builder
	b.Grow(x.size(p))
	for i := range p.segs {
		s := &p.segs[i]
		if s.dots > 0 {
			if run := p.segs[i : i+int(s.dots)]; x.dotSegment(run) {
				return "", run
			}
		}
		b.WriteString(s.part.escape(x.value(s)))
	}
	return b.String(), nil
}

// dotSegment tells whether the values of segs together are "." or "..".
func (x *expansion) dotSegment(segs []segment) bool {
	n := 0
	for i := range segs {
		v := x.value(&segs[i])
		if strings.Trim(v, ".") != "" {
			return false
		}
		n += len(v)
	}
	return n == 1 || n == 2
}
