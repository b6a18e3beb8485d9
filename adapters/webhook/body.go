package webhook

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strings"
)

// Kind is how a body of a given media type is parsed.
type Kind int

// The body kinds the adapter parses.
const (
	KindBinary Kind = iota // kept as []byte
	KindJSON               // application/json and any +json type
	KindForm               // application/x-www-form-urlencoded
	KindXML                // application/xml, text/xml and any +xml type
	KindText               // any other text/* type, kept as a string
)

// maxXMLDepth bounds the nesting of XML documents, so that a hostile body
// cannot make the parser build an arbitrarily deep tree.
const maxXMLDepth = 256

// KindOf returns the parsing kind of a media type (without parameters).
func KindOf(mediaType string) Kind {
	mt := strings.ToLower(strings.TrimSpace(mediaType))
	switch {
	case mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json"):
		return KindJSON
	case mt == "application/x-www-form-urlencoded":
		return KindForm
	case mt == "application/xml" || mt == "text/xml" || strings.HasSuffix(mt, "+xml"):
		return KindXML
	case strings.HasPrefix(mt, "text/"):
		return KindText
	}
	return KindBinary
}

// MediaType returns the lowercase media type of a Content-Type header value,
// without its parameters. An unparsable value yields "".
func MediaType(contentType string) string {
	if contentType == "" {
		return ""
	}
	if plainMediaType(contentType) {
		// What mime.ParseMediaType returns for it, without its map.
		return contentType
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	return mt
}

// plainMediaType says whether s is a media type without parameters,
// spaces or upper case: type "/" subtype, both made of lower-case token
// characters.
func plainMediaType(s string) bool {
	slash := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '/':
			if slash >= 0 {
				return false
			}
			slash = i
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return slash > 0 && slash < len(s)-1
}

// BodyError reports a body that does not parse as its content type says.
type BodyError struct {
	MediaType string
	Err       error
}

// Error says which media type failed to parse and why.
func (e *BodyError) Error() string {
	return fmt.Sprintf("parse %s body: %v", e.MediaType, e.Err)
}

// Unwrap returns the parser's error.
func (e *BodyError) Unwrap() error { return e.Err }

// ParseBody parses a delivery body by its media type into a JSON-like value:
//
//   - JSON: any JSON value, numbers as json.Number so that they stay exact.
//   - Form (application/x-www-form-urlencoded): map[string]any whose values
//     are a string, or a []any of strings when the key repeats.
//   - XML: map[string]any holding the root element under its name. An
//     element becomes a string when it has neither attributes nor child
//     elements, and otherwise a map[string]any where attributes are keys
//     "@name", child elements are keys by their local name (a []any when the
//     element repeats) and non-blank text is the key "#text". Namespace
//     prefixes are dropped; namespace declarations are ignored.
//   - other text/* types: the body as a string.
//   - anything else: the body bytes.
//
// An empty body parses as nil. Errors are *BodyError.
func ParseBody(mediaType string, body []byte) (any, error) {
	if len(body) == 0 {
		return nil, nil
	}
	var (
		v   any
		err error
	)
	switch KindOf(mediaType) {
	case KindJSON:
		v, err = parseJSON(body)
	case KindForm:
		v, err = parseForm(body)
	case KindXML:
		v, err = parseXML(body)
	case KindText:
		return string(body), nil
	default:
		return bytes.Clone(body), nil
	}
	if err != nil {
		return nil, &BodyError{MediaType: mediaType, Err: err}
	}
	return v, nil
}

// ValidateBody reports whether body parses as mediaType, as cheaply as
// possible: JSON is checked without building values.
func ValidateBody(mediaType string, body []byte) error {
	if len(body) == 0 {
		return nil
	}
	if KindOf(mediaType) == KindJSON {
		if err := checkJSON(body); err != nil {
			return &BodyError{MediaType: mediaType, Err: err}
		}
		return nil
	}
	_, err := ParseBody(mediaType, body)
	return err
}

// parsePayload parses body as ParseBody does, pruned to the paths of tree
// (decodeJSONPruned) when tree is not nil and body is JSON; pruned says it
// was.
func parsePayload(mediaType string, body []byte, tree *pathNode) (v any, pruned bool, err error) {
	if tree == nil || len(body) == 0 || KindOf(mediaType) != KindJSON {
		v, err = ParseBody(mediaType, body)
		return v, false, err
	}
	v, err = decodeJSONPruned(body, tree)
	if err != nil {
		return nil, false, &BodyError{MediaType: mediaType, Err: err}
	}
	return v, true, nil
}

func parseJSON(body []byte) (any, error) {
	return decodeJSON(body)
}

// parseJSONStd is the encoding/json reference parseJSON must agree with.
func parseJSONStd(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

func parseForm(body []byte) (any, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(vals))
	for k, vs := range vals {
		if len(vs) == 1 {
			out[k] = vs[0]
			continue
		}
		list := make([]any, len(vs))
		for i, s := range vs {
			list[i] = s
		}
		out[k] = list
	}
	return out, nil
}

// xmlNode is an element being built.
type xmlNode struct {
	name  string
	attrs map[string]any
	kids  map[string]any
	text  strings.Builder
}

func (n *xmlNode) value() any {
	text := strings.TrimSpace(n.text.String())
	if len(n.attrs) == 0 && len(n.kids) == 0 {
		return text
	}
	m := make(map[string]any, len(n.attrs)+len(n.kids)+1)
	for k, v := range n.attrs {
		m[k] = v
	}
	for k, v := range n.kids {
		m[k] = v
	}
	if text != "" {
		m["#text"] = text
	}
	return m
}

func (n *xmlNode) add(name string, v any) {
	if n.kids == nil {
		n.kids = map[string]any{}
	}
	prev, ok := n.kids[name]
	if !ok {
		n.kids[name] = v
		return
	}
	if list, isList := prev.(xmlList); isList {
		n.kids[name] = append(list, v)
		return
	}
	n.kids[name] = xmlList{prev, v}
}

// xmlList marks lists built from repeated elements, so that a repeated
// element whose value is itself a list is not flattened.
type xmlList []any

func parseXML(body []byte) (any, error) {
	dec := xml.NewDecoder(bytes.NewReader(body))
	dec.Strict = true
	var (
		stack []*xmlNode
		root  map[string]any
	)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil {
				return nil, errors.New("more than one root element")
			}
			if len(stack) >= maxXMLDepth {
				return nil, fmt.Errorf("elements nested deeper than %d", maxXMLDepth)
			}
			n := &xmlNode{name: t.Name.Local}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				if n.attrs == nil {
					n.attrs = map[string]any{}
				}
				n.attrs["@"+a.Name.Local] = a.Value
			}
			stack = append(stack, n)
		case xml.EndElement:
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			v := finishXML(n.value())
			if len(stack) == 0 {
				root = map[string]any{n.name: v}
				continue
			}
			stack[len(stack)-1].add(n.name, v)
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, errors.New("text outside the root element")
				}
				continue
			}
			stack[len(stack)-1].text.Write(t)
		}
	}
	if root == nil {
		return nil, errors.New("no root element")
	}
	return root, nil
}

// finishXML turns the internal list type into plain []any.
func finishXML(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	for k, x := range m {
		if l, isList := x.(xmlList); isList {
			m[k] = []any(l)
		}
	}
	return m
}
