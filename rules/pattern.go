package rules

import "strings"

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
	kind  segKind
	text  string // the literal text (segLit) or the property name (segFetch)
	group int    // the capture group number (segGroup)
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
