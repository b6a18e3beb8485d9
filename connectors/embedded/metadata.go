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

// decodeMetadata decodes what encodeMetadata wrote.
func decodeMetadata(data []byte) (map[string]string, error) {
	var md map[string]string
	if err := json.Unmarshal(data, &md); err != nil {
		return nil, err
	}
	return md, nil
}
