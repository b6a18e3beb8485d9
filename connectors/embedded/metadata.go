package embedded

import (
	"encoding/json"
)

// encodeMetadata encodes md as a JSON object. It is a small, allocation-lean
// stand-in for json.Marshal on the publish path; decodeMetadata reads it
// back with encoding/json.
func encodeMetadata(md map[string]string) []byte {
	n := 2
	for k, v := range md {
		n += len(k) + len(v) + 6
	}
	b := make([]byte, 0, n)
	b = append(b, '{')
	first := true
	for k, v := range md {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, v)
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Bytes that JSON allows
// unescaped (including multi-byte UTF-8) are copied as they are.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// decodeMetadata decodes what encodeMetadata wrote. Objects whose strings
// hold no escapes, the usual case, are read without encoding/json.
func decodeMetadata(data []byte) (map[string]string, error) {
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
