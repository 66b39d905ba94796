package rules

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/resc-go/resc/config"
)

// anonymous is the name of a rule without one, as in resc.
const anonymous = "<anonymous rule>"

// Compile compiles the rules of watcher w, read from file, and checks them.
//
// It returns every problem found, each located by File, Path (see
// config.RulePath) and Rule, and a nil Ruleset when there is any. The
// problems are: an `on` that is not a valid regular expression, or that
// names a group input_task or twice the same group; a ${var} that nothing can
// define; a fetch URL using a fetch variable; a make entry using the
// variables of two fetchers; two fetchers of a rule with the same returns.
//
// A maker with an empty Task makes ${input_task}, as the configuration
// loader's default does.
func Compile(file string, w config.Watcher) (*Ruleset, config.Problems) {
	c := compiler{file: file, watcher: w.Index}
	rs := &Ruleset{rules: make([]*Rule, 0, len(w.Rules))}
	for i := range w.Rules {
		if r := c.compileRule(&w.Rules[i]); r != nil {
			rs.rules = append(rs.rules, r)
		}
	}
	if len(c.problems) > 0 {
		return nil, c.problems
	}
	return rs, nil
}

type compiler struct {
	file     string
	watcher  int
	rule     int    // index of the rule being compiled
	ruleName string // name of the rule being compiled
	problems config.Problems
}

func (c *compiler) problem(field, format string, args ...any) {
	c.problems = append(c.problems, config.Problem{
		File:    c.file,
		Path:    config.RulePath(c.watcher, c.rule, field),
		Rule:    c.ruleName,
		Message: fmt.Sprintf(format, args...),
	})
}

// scope is what the variables of a rule's patterns can name.
type scope struct {
	groups     map[string]int // named group -> group number
	groupOrder []string       // named groups in regex order
	namespaces []string       // returns of each fetcher, in order
}

// compileRule returns the compiled rule, or nil when it has problems (which
// are recorded).
func (c *compiler) compileRule(cr *config.Rule) *Rule {
	c.rule = cr.Index
	c.ruleName = cr.Name
	if c.ruleName == "" {
		c.ruleName = anonymous
	}
	before := len(c.problems)
	r := &Rule{name: c.ruleName}
	sc := scope{groups: make(map[string]int)}
	c.compileOn(cr, r, &sc)
	c.compileFetchers(cr, r, &sc)
	for i := range cr.Make {
		r.makers = append(r.makers, c.compileMaker(&cr.Make[i], r, &sc))
	}
	if len(c.problems) > before {
		return nil
	}
	return r
}

// compileOn compiles the rule's regular expression into r and declares its
// named groups in sc. A regular expression that does not compile still
// declares the groups its text seems to, so that the problems of the
// patterns are reported too.
func (c *compiler) compileOn(cr *config.Rule, r *Rule, sc *scope) {
	re, err := regexp.Compile(cr.On)
	var names []string
	if err != nil {
		c.problem("on", "%s", regexpMessage(cr.On, err))
		for _, m := range groupSyntax.FindAllStringSubmatch(cr.On, -1) {
			names = append(names, m[1])
		}
		names = append([]string{""}, names...)
	} else {
		r.re = re
		names = re.SubexpNames()
	}
	for i, name := range names {
		switch {
		case name == "":
			continue
		case name == InputTask:
			c.problem("on", "a group cannot be named %s: ${%s} is the whole event", InputTask, InputTask)
		case sc.has(name):
			c.problem("on", "group %q is named twice", name)
		default:
			sc.groups[name] = i
			sc.groupOrder = append(sc.groupOrder, name)
			r.groups = append(r.groups, group{name: name, index: i})
		}
	}
}

// compileFetchers declares the fetchers' namespaces in sc and compiles
// their URL patterns into r.
func (c *compiler) compileFetchers(cr *config.Rule, r *Rule, sc *scope) {
	for i := range cr.Fetch {
		ns := cr.Fetch[i].Returns
		if slices.Contains(sc.namespaces, ns) {
			c.problem(fmt.Sprintf("fetch[%d].returns", i), "fetch namespace %q is already the returns of another fetcher of this rule", ns)
		}
		sc.namespaces = append(sc.namespaces, ns)
	}
	for i := range cr.Fetch {
		cf := &cr.Fetch[i]
		field := fmt.Sprintf("fetch[%d].url", i)
		url, _ := c.compilePattern(field, cf.URL, sc, true)
		if !cf.Raw {
			c.placeURL(field, &url)
		}
		f := fetcher{url: url, returns: cf.Returns}
		if cf.Settings != (config.FetchSettings{}) {
			f.settings = &cf.Settings
		}
		r.fetchers = append(r.fetchers, f)
		r.needLoc = r.needLoc || url.groups
	}
}

// compileMaker compiles the patterns of one make entry of r: they may use
// the variables of one fetcher only.
func (c *compiler) compileMaker(cm *config.Maker, r *Rule, sc *scope) maker {
	task := cm.Task
	if task == "" {
		task = config.DefaultTask
	}
	m := maker{ns: -1, hasSet: cm.Set != ""}
	fields := [...]struct {
		name, text string
		dst        *pattern
	}{
		{"task", task, &m.task},
		{"queue", cm.Queue, &m.queue},
		{"set", cm.Set, &m.set},
	}
	nsField := ""
	mixed := false
	for _, f := range fields {
		field := makePath(c.watcher, c.rule, cm) + "." + f.name
		p, used := c.compilePattern(field, f.text, sc, false)
		*f.dst = p
		r.needLoc = r.needLoc || p.groups
		for _, ns := range used {
			switch {
			case m.ns < 0:
				m.ns, nsField = ns, f.name
			case ns != m.ns && !mixed:
				mixed = true
				c.problem(field, "make entry uses the results of two fetchers: %q here and %q in %s; a make entry may use the variables of one fetcher only",
					sc.namespaces[ns], sc.namespaces[m.ns], nsField)
			}
		}
	}
	return m
}

// groupSyntax finds the named groups of a regular expression that does not
// compile, to check the patterns anyway.
var groupSyntax = regexp.MustCompile(`\(\?P?<(\w+)>`)

func (sc *scope) has(name string) bool {
	_, ok := sc.groups[name]
	return ok
}

// compilePattern compiles pattern text, the value of field, recording a
// problem for each variable it cannot resolve. It returns the pattern and the
// fetchers whose variables it uses (indices into sc.namespaces, each once).
// In a fetch URL (url true) only input_task and groups may be used.
func (c *compiler) compilePattern(field, text string, sc *scope, url bool) (pattern, []int) {
	var p pattern
	var used []int
	var reported []string
	for _, pc := range split(text) {
		if pc.name == "" {
			p.segs = append(p.segs, segment{kind: segLit, text: pc.lit})
			p.litLen += len(pc.lit)
			continue
		}
		seg, ns, msg := sc.resolve(pc.name)
		if msg == "" && url && ns >= 0 {
			msg = fmt.Sprintf("a fetch URL cannot use the fetch variable ${%s}: it may use only %s", pc.name, sc.defined(false))
		}
		if msg != "" {
			if !slices.Contains(reported, pc.name) {
				reported = append(reported, pc.name)
				c.problem(field, "%s", msg)
			}
			continue
		}
		if seg.kind == segGroup {
			p.groups = true
		}
		if ns >= 0 && !slices.Contains(used, ns) {
			used = append(used, ns)
		}
		p.segs = append(p.segs, seg)
	}
	return p, used
}

// placeURL sets the part of the URL each variable of the fetch URL p lands
// in, from the literal text before it, and marks the path segments made of
// variables only (see segment.dots). A variable before the "://" that ends
// the scheme is a problem: no escaping could keep it from changing the
// scheme and the host.
func (c *compiler) placeURL(field string, p *pattern) {
	part := partScheme
	// The path segment being read: its variables from first, n of them,
	// and whether it has literal text.
	first, n, lit := 0, 0, false
	endSegment := func() {
		if part == partPath && n > 0 && !lit {
			p.segs[first].dots = int32(n)
		}
		n, lit = 0, false
	}
	for i := range p.segs {
		s := &p.segs[i]
		if s.kind != segLit {
			s.part = part
			switch part {
			case partScheme:
				c.problem(field, "${%s} comes before the \"://\" that ends the scheme, where no escaping can keep it "+
					"from changing the scheme and the host: write them out (http://${host}/... is fine), or give the fetcher "+
					"\"escape\": false to insert values as they are", s.text)
				return
			case partPath:
				if n == 0 {
					first = i
				}
				n++
			}
			continue
		}
		text := s.text
		if part == partScheme {
			k := strings.Index(text, "://")
			if k < 0 {
				continue
			}
			part, text = partHost, text[k+len("://"):]
		}
		for j := 0; j < len(text); j++ {
			switch ch := text[j]; {
			case part == partFragment:
				// The fragment lasts to the end.
			case ch == '#':
				endSegment()
				part = partFragment
			case part == partQuery:
			case ch == '?':
				endSegment()
				part = partQuery
			case ch == '/':
				endSegment()
				part = partPath
			case part == partPath:
				lit = true
			}
		}
	}
	endSegment()
}

// resolve returns the segment a variable stands for and, for a fetch
// variable, the index of its fetcher (-1 otherwise); or a message saying why
// the variable can never be defined.
func (sc *scope) resolve(name string) (seg segment, ns int, msg string) {
	if name == InputTask {
		return segment{kind: segInput, text: name}, -1, ""
	}
	if g, ok := sc.groups[name]; ok {
		return segment{kind: segGroup, text: name, group: g}, -1, ""
	}
	// <returns>.<key>, the longest returns winning if several fit.
	ns = -1
	for i, returns := range sc.namespaces {
		if len(name) > len(returns) && name[len(returns)] == '.' && strings.HasPrefix(name, returns) &&
			(ns < 0 || len(returns) > len(sc.namespaces[ns])) {
			ns = i
		}
	}
	if ns >= 0 {
		return segment{kind: segFetch, text: name[len(sc.namespaces[ns])+1:]}, ns, ""
	}
	if prefix, _, ok := strings.Cut(name, "."); ok && sc.has(prefix) {
		return segment{}, -1, fmt.Sprintf("unknown variable ${%s}: %q is a group of on, not the returns of a fetcher; defined are %s", name, prefix, sc.defined(true))
	}
	return segment{}, -1, fmt.Sprintf("unknown variable ${%s}: defined are %s", name, sc.defined(true))
}

// defined lists the variables a pattern may use, for messages.
func (sc *scope) defined(fetch bool) string {
	names := append([]string{InputTask}, sc.groupOrder...)
	if fetch {
		for _, ns := range sc.namespaces {
			names = append(names, ns+".<key>")
		}
	}
	return strings.Join(names, ", ")
}

// regexpMessage says what is wrong with a regular expression, and where:
// the byte offset in on of what the parser quotes, or of the parentheses
// that do not pair up (the parser quotes the whole expression for those,
// which would say "at byte 0"); no offset when it is not known.
func regexpMessage(on string, err error) string {
	var se *syntax.Error
	if !errors.As(err, &se) {
		return fmt.Sprintf("invalid regular expression: %v", err)
	}
	at := -1
	switch unclosed, stray := parens(on); {
	case se.Code == syntax.ErrMissingParen && len(unclosed) > 0:
		where := fmt.Sprintf("the ( at byte %d is", unclosed[0])
		if len(unclosed) > 1 {
			where = fmt.Sprintf("the ( at bytes %s are", strings.Trim(strings.Join(strings.Fields(fmt.Sprint(unclosed)), ", "), "[]"))
		}
		return fmt.Sprintf("invalid regular expression: %s: %s never closed: `%s`", se.Code, where, on)
	case se.Code == syntax.ErrUnexpectedParen:
		at = stray
	case se.Code == syntax.ErrTrailingBackslash:
		at = len(on) - 1
	case se.Expr != "" && se.Expr != on:
		at = strings.Index(on, se.Expr)
	}
	if at >= 0 {
		return fmt.Sprintf("invalid regular expression at byte %d: %s: `%s`", at, se.Code, se.Expr)
	}
	return fmt.Sprintf("invalid regular expression: %s: `%s`", se.Code, se.Expr)
}

// parens pairs the parentheses of a regular expression, leaving out the
// escaped ones (\(, \Q...\E) and those in character classes: it returns
// the offsets of the ( never closed and of the first ) that closes none
// (-1: none).
func parens(re string) (unclosed []int, stray int) {
	stray = -1
	for i := 0; i < len(re); i++ {
		switch re[i] {
		case '\\':
			if strings.HasPrefix(re[i:], `\Q`) {
				end := strings.Index(re[i+2:], `\E`)
				if end < 0 {
					return unclosed, stray // quoted to the end
				}
				i += 2 + end + 1
				continue
			}
			i++ // the escaped character
		case '[':
			i = classEnd(re, i)
		case '(':
			unclosed = append(unclosed, i)
		case ')':
			if len(unclosed) == 0 {
				if stray < 0 {
					stray = i
				}
				continue
			}
			unclosed = unclosed[:len(unclosed)-1]
		}
	}
	return unclosed, stray
}

// classEnd is the offset of the ] that closes the character class opened
// at re[open], or the last offset when none does.
func classEnd(re string, open int) int {
	i := open + 1
	if i < len(re) && re[i] == '^' {
		i++
	}
	if i < len(re) && re[i] == ']' {
		i++ // a ] first in the class is literal
	}
	for ; i < len(re); i++ {
		switch {
		case re[i] == '\\':
			i++
		case strings.HasPrefix(re[i:], "[:"):
			if end := strings.Index(re[i+2:], ":]"); end >= 0 {
				i += 2 + end + 1
			}
		case re[i] == ']':
			return i
		}
	}
	return len(re) - 1
}

// makePath is where a make entry is, relative to its rule: as the file wrote
// it when the loader recorded that, else "make[i]".
func makePath(watcher, rule int, cm *config.Maker) string {
	if cm.Path != "" {
		return strings.TrimPrefix(cm.Path, config.RulePath(watcher, rule, "")+".")
	}
	return fmt.Sprintf("make[%d]", cm.Index)
}
