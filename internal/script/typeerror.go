package script

import (
	"errors"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrWrongType is wrapped by every TypeError: a key holds another Redis
// type than the script needs, and the script wrote nothing.
var ErrWrongType = errors.New("a key has the wrong Redis type")

// TypeError is a key of the wrong type, found by a script before it wrote
// anything (or by Redis' WRONGTYPE reply to a read). Err is the sentinel of
// the package that ran the script, saying which of its keys it is;
// errors.Is sees both Err and ErrWrongType.
type TypeError struct {
	Key string
	Err error
}

func (e *TypeError) Error() string { return e.Err.Error() + ": " + strconv.Quote(e.Key) }

// Unwrap returns Err and ErrWrongType.
func (e *TypeError) Unwrap() []error { return []error{e.Err, ErrWrongType} }

// IsWrongTypeReply reports whether err is Redis' WRONGTYPE reply.
func IsWrongTypeReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "WRONGTYPE")
}
