// Package jsonkind names the JSON type of a decoded value for messages
// ("must be a string, not a number"), in the same words wherever a value
// is judged: the configuration loader and the fetch results.
package jsonkind

import (
	"encoding/json"
	"fmt"
)

// Of names the JSON type of v, a value decoded by encoding/json (with or
// without UseNumber): "null", "a boolean", "a number", "a string", "an
// array" or "an object". Another Go type is named by its type.
func Of(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}
