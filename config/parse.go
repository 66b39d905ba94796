package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hjson/hjson-go/v4"
)

// The parsers turn a file into a generic tree whose values are string,
// json.Number (the number as written), bool, nil (null), []any and *object.

// object is a JSON or Hjson object with its members in file order. A key
// given twice in a JSON file is kept twice, so that the walk reports it
// instead of silently keeping one of the values.
type object struct {
	members []member
}

// member is one key and its value.
type member struct {
	key string
	val any
}

// get returns the value of the first member named key.
func (o *object) get(key string) (any, bool) {
	for _, m := range o.members {
		if m.key == key {
			return m.val, true
		}
	}
	return nil, false
}

// syntaxError is a file that cannot be parsed. Line and column are 1-based;
// zero when the parser does not say.
type syntaxError struct {
	line, col int
	msg       string
	err       error // the parser's error, nil when the loader found it
	refused   bool  // not a syntax error: the file was not given to the parser, msg says why
}

func (e *syntaxError) Error() string {
	if e.refused {
		return e.msg
	}
	if e.line > 0 {
		return fmt.Sprintf("syntax error at line %d, column %d: %s", e.line, e.col, e.msg)
	}
	return "syntax error: " + e.msg
}

// parseJSON parses a JSON document into a tree. It first validates the whole
// input with encoding/json, whose SyntaxError offsets are consistent, then
// builds the tree from the token stream so that key order and duplicate keys
// are kept.
func parseJSON(data []byte) (any, *syntaxError) {
	if err := json.Unmarshal(data, new(json.RawMessage)); err != nil {
		return nil, jsonSyntaxError(data, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := jsonValue(dec)
	if err != nil {
		// Unreachable for a document Unmarshal accepted; reported, not panicked.
		return nil, &syntaxError{msg: err.Error(), err: err}
	}
	return v, nil
}

// jsonSyntaxError locates an encoding/json error in data.
func jsonSyntaxError(data []byte, err error) *syntaxError {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return &syntaxError{msg: err.Error(), err: err}
	}
	// Offset counts the bytes read, the offending one included; at the end
	// of the input there is no offending byte.
	at := int(se.Offset) - 1
	if strings.HasPrefix(se.Error(), "unexpected end") {
		at = int(se.Offset)
	}
	line, col := position(data, at)
	return &syntaxError{line: line, col: col, msg: se.Error(), err: err}
}

// position returns the 1-based line and column (in characters) of the byte
// at offset at.
func position(data []byte, at int) (line, col int) {
	at = max(0, min(at, len(data)))
	before := data[:at]
	line = 1 + bytes.Count(before, []byte{'\n'})
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[start:]) + 1
}

// jsonValue reads the next value from dec.
func jsonValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return jsonObject(dec)
		case '[':
			return jsonArray(dec)
		}
		return nil, fmt.Errorf("unexpected %q", rune(t))
	default:
		return t, nil
	}
}

// jsonObject reads the members of an object whose '{' was read.
func jsonObject(dec *json.Decoder) (*object, error) {
	o := &object{}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		if tok == json.Delim('}') {
			return o, nil
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected %v where a key was expected", tok)
		}
		v, err := jsonValue(dec)
		if err != nil {
			return nil, err
		}
		o.members = append(o.members, member{key: key, val: v})
	}
}

// jsonArray reads the elements of an array whose '[' was read.
func jsonArray(dec *json.Decoder) ([]any, error) {
	a := []any{}
	for dec.More() {
		v, err := jsonValue(dec)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, err
	}
	return a, nil
}

// parseHjson parses an Hjson document into a tree. CRLF line endings are
// turned into LF first, so that quoteless strings and multiline strings
// never keep a '\r'. Duplicate keys are refused by the parser.
func parseHjson(data []byte) (v any, serr *syntaxError) {
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	defer func() {
		// The loader promises never to panic, whatever the input; a panic of
		// the Hjson parser is reported as a problem of the file.
		if r := recover(); r != nil {
			v, serr = nil, &syntaxError{msg: fmt.Sprintf("the Hjson parser failed: %v", r)}
		}
	}()
	if serr := hjsonTooSlow(data); serr != nil {
		return nil, serr
	}
	opts := hjson.DefaultDecoderOptions()
	opts.UseJSONNumber = true
	opts.DisallowDuplicateKeys = true
	opts.WhitespaceAsComments = false
	var root hjson.Node
	if err := hjson.UnmarshalWithOptions(data, &root, opts); err != nil {
		return nil, swallowedClose(data, hjsonSyntaxError(data, err))
	}
	return fromHjson(&root), nil
}

// hjsonWorkLimit bounds the work of hjson-go on a file, as hjsonTooSlow
// counts it: about a tenth of a second on one core (BenchmarkHjsonLoad).
const hjsonWorkLimit = 1 << 27

// hjsonTooSlow refuses a file on which hjson-go (v4.6.0) would spend a time
// growing with the square of a line's length. Its reader of an unquoted
// value (readTfnns) copies the whole value read so far at each ',', ']',
// '}', '#' and '/' of it when the value starts like true, false, null or a
// number ("t]]]...": 80 KB take 7 s). An unquoted value ends with its
// line, so the work on a line is at most its length times its number of
// those characters; the file is refused when that adds up, over its
// lines, to more than hjsonWorkLimit, naming its heaviest line. Ordinary
// files are far below the limit: a file of 100-byte lines holding 10 of
// those characters each stays below it up to 13 MB, and a line of 8 KB
// full of them passes on its own; JSON files do not go through hjson-go.
func hjsonTooSlow(data []byte) *syntaxError {
	var total, worst, worstLine, worstLen, worstEnds int
	for n, rest := 1, data; len(rest) > 0; n++ {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		ends := 0
		for _, c := range line {
			switch c {
			case ',', ']', '}', '#', '/':
				ends++
			}
		}
		work := len(line) * ends
		total += work
		if work > worst {
			worst, worstLine, worstLen, worstEnds = work, n, len(line), ends
		}
	}
	if total <= hjsonWorkLimit {
		return nil
	}
	return &syntaxError{refused: true, line: worstLine, msg: fmt.Sprintf(
		"line %d is too much for the Hjson parser: %d bytes holding %d of the characters , ] } # / "+
			"(hjson-go reads an unquoted value again at each of them: its time grows with a line's length times their number, "+
			"and this file would take more than the tenth of a second allowed): break the long lines, or write the configuration as JSON (.json)",
		worstLine, worstLen, worstEnds)}
}

// hjsonAt matches the location hjson-go appends to its messages:
// "<message> at line <line>,<column> >>> <text of the line>".
var hjsonAt = regexp.MustCompile(`(?s)^(.*?) at line (\d+),(\d+) >>> `)

// hjsonDuplicate matches hjson-go's message for a duplicate key, which
// quotes both values in Go syntax; only the key is worth showing.
var hjsonDuplicate = regexp.MustCompile(`(?s)^Found duplicate values .* for key '(.*)'$`)

// hjsonSyntaxError turns an hjson-go error on data into a syntaxError.
// hjson-go gives no location for an error at the end of the input: the
// location is then the end of data.
func hjsonSyntaxError(data []byte, err error) *syntaxError {
	e := &syntaxError{msg: err.Error(), err: err}
	if m := hjsonAt.FindStringSubmatch(e.msg); m != nil {
		e.msg = m[1]
		e.line, _ = strconv.Atoi(m[2])
		e.col, _ = strconv.Atoi(m[3])
		if e.line == 1 {
			e.col++ // hjson-go counts the columns of the first line from 0
		}
	} else {
		e.line, e.col = position(data, len(data))
	}
	if d := hjsonDuplicate.FindStringSubmatch(e.msg); d != nil {
		e.msg = fmt.Sprintf("duplicate key %q", d[1])
	}
	return e
}

// swallowedClose explains a syntax error caused earlier in the file by an
// unquoted value that took in the } or ] of its one-line object or array
// ("make: { queue: q }": the value is "q }", since an unquoted Hjson value
// runs to the end of its line, and the parser only stumbles lines later,
// often at the end of the file). When such a value is found at or before
// the line of e, the error is placed at that value and says why; e is
// returned unchanged otherwise.
func swallowedClose(data []byte, e *syntaxError) *syntaxError {
	for n, rest := 1, data; len(rest) > 0 && (e.line == 0 || n <= e.line); n++ {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		at := unquotedCloser(line)
		if at < 0 {
			continue
		}
		value := strings.TrimSpace(string(line[at:]))
		_, col := position(line, at)
		parser := e.msg
		if e.line > 0 {
			parser = fmt.Sprintf("line %d, column %d: %s", e.line, e.col, e.msg)
		}
		return &syntaxError{line: n, col: col, err: e.err, msg: fmt.Sprintf(
			"the unquoted value `%s` runs to the end of the line, as every unquoted Hjson value does, "+
				"taking in the `%s` that should close its one-line object or array: quote the values of a one-line object "+
				`({ queue: "q" }) or write one key a line (the parser stopped at %s)`,
			value, closers(value), parser)}
	}
	return e
}

// closers names the } and ] a value took in, for messages.
func closers(value string) string {
	var cs []string
	for _, c := range value {
		if c == '}' || c == ']' {
			cs = append(cs, string(c))
		}
	}
	return strings.Join(cs, " ")
}

// unquotedCloser returns the offset in line of an unquoted value of an
// object or array opened on that line which takes in a } or ] (the rest
// of the line is the value, in Hjson), or -1. Quoted strings and comments
// are skipped; a value is what follows a ':', or a '[' or ',' in an array;
// an unquoted value of a key of an object not opened on the line (on:
// ^a[bc]$) is the rest of the line, and fine.
func unquotedCloser(line []byte) int {
	var open []byte // the { and [ opened on this line, still open
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"' || c == '\'':
			i = quoteEnd(line, i)
			continue
		case c == '#' || c == '/' && i+1 < len(line) && (line[i+1] == '/' || line[i+1] == '*'):
			return -1
		case c == '{' || c == '[':
			open = append(open, c)
			if c == '{' {
				continue
			}
		case c == '}' || c == ']':
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
			continue
		case c == ':':
		case c == ',' && len(open) > 0 && open[len(open)-1] == '[':
		default:
			continue
		}
		// A value starts after line[i], past blanks.
		j := i + 1
		for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
			j++
		}
		if j == len(line) || bytes.IndexByte([]byte("\"'{[]}#,\r"), line[j]) >= 0 ||
			line[j] == '/' && j+1 < len(line) && (line[j+1] == '/' || line[j+1] == '*') {
			continue
		}
		// true, false, null or a number ends at a , } or ]; any other
		// unquoted value is a string, which does not.
		k := bytes.IndexAny(line[j:], ",}]")
		if k < 0 {
			return -1 // the value is the rest of the line: nothing after it
		}
		if v := bytes.TrimSpace(line[j : j+k]); json.Valid(v) {
			i = j + k - 1 // the , } or ] next
			continue
		}
		if len(open) > 0 && bytes.ContainsAny(line[j:], "}]") {
			return j
		}
		return -1 // the value is the rest of the line
	}
	return -1
}

// quoteEnd is the offset of the quote that closes the string opened at
// line[open], or the last offset when the line ends first.
func quoteEnd(line []byte, open int) int {
	for i := open + 1; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case line[open]:
			return i
		}
	}
	return len(line) - 1
}

// fromHjson converts an hjson-go Node tree into the loader's tree.
func fromHjson(v any) any {
	if n, ok := v.(*hjson.Node); ok {
		if n == nil {
			return nil
		}
		v = n.Value
	}
	switch t := v.(type) {
	case *hjson.OrderedMap:
		o := &object{members: make([]member, 0, len(t.Keys))}
		for _, k := range t.Keys {
			o.members = append(o.members, member{key: k, val: fromHjson(t.Map[k])})
		}
		return o
	case []any:
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = fromHjson(e)
		}
		return a
	case float64: // not produced with UseJSONNumber; kept a number anyway
		return json.Number(strconv.FormatFloat(t, 'g', -1, 64))
	default:
		return t
	}
}
