package rest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
)

// decode parses a response body as JSON or XML into JSON-like values.
func decode(format, contentType string, body []byte) (any, error) {
	if format == FormatAuto {
		mt, _, _ := mime.ParseMediaType(contentType)
		format = FormatJSON
		if strings.HasSuffix(mt, "/xml") || strings.HasSuffix(mt, "+xml") {
			format = FormatXML
		}
	}
	if format == FormatXML {
		return decodeXML(body)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("parse JSON response: %w", err)
	}
	return v, nil
}

// decodeXML turns XML into maps: an element becomes a map of its child
// elements (repeated ones as a list) and attributes ("@name"); an element
// with only text becomes its text ("#text" when it also has children or
// attributes).
func decodeXML(body []byte) (any, error) {
	dec := xml.NewDecoder(bytes.NewReader(body))
	type frame struct {
		name string
		m    map[string]any
		text strings.Builder
	}
	var stack []*frame
	var root any
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse XML response: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			f := &frame{name: t.Name.Local, m: map[string]any{}}
			for _, a := range t.Attr {
				f.m["@"+a.Name.Local] = a.Value
			}
			stack = append(stack, f)
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(t)
			}
		case xml.EndElement:
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			var v any = f.m
			text := strings.TrimSpace(f.text.String())
			if len(f.m) == 0 {
				v = text
			} else if text != "" {
				f.m["#text"] = text
			}
			if len(stack) == 0 {
				root = map[string]any{f.name: v}
				continue
			}
			parent := stack[len(stack)-1].m
			switch prev := parent[f.name].(type) {
			case nil:
				parent[f.name] = v
			case []any:
				parent[f.name] = append(prev, v)
			default:
				parent[f.name] = []any{prev, v}
			}
		}
	}
	if root == nil {
		return nil, errors.New("parse XML response: no root element")
	}
	return root, nil
}

// lookup follows a dotted path through maps.
func lookup(v any, path string) (any, bool) {
	if path == "" {
		return v, true
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// records picks the records out of a decoded body.
func records(body any, path string) ([]map[string]any, error) {
	v, ok := lookup(body, path)
	if !ok || v == nil {
		return nil, nil
	}
	switch x := v.(type) {
	case []any:
		out := make([]map[string]any, 0, len(x))
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("record %d at %q is a %T, not an object", i, path, e)
			}
			out = append(out, m)
		}
		return out, nil
	case map[string]any:
		// XML collections with one element, or a single object.
		return []map[string]any{x}, nil
	case string:
		if x == "" {
			return nil, nil
		}
	}
	return nil, fmt.Errorf("%q holds a %T, not a list of records (set records_path)", path, v)
}

// scalar renders a value found in a body as text, for tokens and URLs.
func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	return fmt.Sprint(v)
}
