package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Load reads the configuration file at path, JSON or Hjson as its extension
// says (".json" or ".hjson", in any case), applies the defaults and checks
// structure and types.
//
// On success the error is nil and the Config holds the values, the defaults
// and the Warnings on deprecated resc keys. Otherwise the Config is nil and
// the error is a Problems listing every problem found, in file order: a file
// that cannot be read (errors.Is(err, fs.ErrNotExist) works through it), a
// syntax error with its line and column, or every problem of the content
// (those that depend on two keys, like a backoff_min_ms above the
// backoff_max_ms it inherits, come last).
// redis.url may be missing (the command line can give it): the caller checks.
func Load(path string) (*Config, error) {
	return whole(LoadPartial(path))
}

// LoadBytes is Load for a file already read: path only chooses the format,
// by its extension, and names the file in Config.Path and the problems.
// CRLF line endings and a leading UTF-8 byte order mark are accepted.
func LoadBytes(path string, data []byte) (*Config, error) {
	return whole(loadBytes(path, data))
}

// whole is the Config of a file without problems: nil when there is any.
func whole(c *Config, err error) (*Config, error) {
	if err != nil {
		return nil, err
	}
	return c, nil
}

// LoadPartial is Load for `resc check`, which reports the problems of the
// rules too: with problems in the content it also returns the Config built
// from the values that were valid (invalid ones left at their zero value),
// so that the caller can compile the rules and report their problems with
// the others. The Config is nil when the file could not be read or parsed.
// Never run a partial Config.
func LoadPartial(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{readProblem(path, err)}
	}
	return loadBytes(path, data)
}

func loadBytes(path string, data []byte) (*Config, error) {
	hjsonFormat, ok := isHjson(path)
	if !ok {
		return nil, Problems{{
			File:    path,
			Message: fmt.Sprintf("unknown file extension %q: use .json or .hjson", filepath.Ext(path)),
		}}
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, Problems{{File: path, Message: "the file is empty"}}
	}
	root, serr := parse(data, hjsonFormat)
	if serr != nil {
		return nil, Problems{{File: path, Message: serr.Error(), Err: serr.err}}
	}
	l := newLoader(path)
	c := l.config(root)
	c.Warnings = l.warnings
	if len(l.problems) > 0 {
		return c, l.problems
	}
	return c, nil
}

// isHjson tells the format from the extension of path; ok is false for an
// extension that is neither .json nor .hjson.
func isHjson(path string) (hjsonFormat, ok bool) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return false, true
	case ".hjson":
		return true, true
	}
	return false, false
}

// readProblem reports a file that cannot be read, without repeating its path.
func readProblem(path string, err error) Problem {
	msg := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		msg = pe.Err.Error()
	}
	return Problem{File: path, Message: "cannot read the file: " + msg, Err: err}
}

// parse parses data as JSON or Hjson into the loader's tree.
func parse(data []byte, hjsonFormat bool) (any, *syntaxError) {
	if hjsonFormat {
		return parseHjson(data)
	}
	return parseJSON(data)
}
