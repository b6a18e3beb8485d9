package embedded

import (
	"encoding/json"
)

// decodeJSONMetadata decodes the JSON object of strings that version 1
// files hold in messages.metadata, when they are migrated. Objects whose
// strings hold no escapes, the usual case, are read without encoding/json.
func decodeJSONMetadata(data []byte) (map[string]string, error) {
	if md, ok := decodePlain(data); ok {
		return md, nil
	}
	var md map[string]string
	if err := json.Unmarshal(data, &md); err != nil {
		return nil, err
	}
	return md, nil
}

// decodePlain decodes a JSON object of strings without escapes. ok is
// false for anything else, which encoding/json then decodes.
func decodePlain(b []byte) (md map[string]string, ok bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, false
	}
	md = make(map[string]string, 8)
	if len(b) == 2 {
		return md, true
	}
	i := 1
	for {
		k, j, ok := plainString(b, i)
		if !ok || j >= len(b) || b[j] != ':' {
			return nil, false
		}
		v, j, ok := plainString(b, j+1)
		if !ok || j >= len(b) {
			return nil, false
		}
		md[k] = v
		switch b[j] {
		case ',':
			i = j + 1
		case '}':
			return md, j == len(b)-1
		default:
			return nil, false
		}
	}
}

// plainString reads the string starting at b[i] and returns it with the
// index after it; ok is false if it is not a string without escapes.
func plainString(b []byte, i int) (s string, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return string(b[i+1 : j]), j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}
