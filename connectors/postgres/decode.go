package postgres

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// typeInfo is what decoding needs to know about a column type.
type typeInfo struct {
	// base is the OID values decode as: the type itself, or a domain's
	// base type (followed to the end).
	base uint32
	// elem is the element type of an array, 0 otherwise.
	elem uint32
	// delim is an array's element delimiter.
	delim byte
}

// types resolves column type OIDs: pgx's type map for the built-in types,
// the catalog for domains, enums and arrays of them. It is used from one
// goroutine at a time.
type types struct {
	m     *pgtype.Map
	known map[uint32]typeInfo
	// lookup loads an OID's pg_type row; nil means unknown OIDs decode as
	// text.
	lookup func(oid uint32) (typtype byte, basetype, elem uint32, delim byte, err error)
}

func newTypes() *types {
	return &types{m: pgtype.NewMap(), known: map[uint32]typeInfo{}}
}

// info returns what decoding a value of oid needs, loading domains, enums
// and arrays from the catalog the first time.
func (ts *types) info(oid uint32) (typeInfo, error) {
	if ti, ok := ts.known[oid]; ok {
		return ti, nil
	}
	ti := typeInfo{base: oid, delim: ','}
	if t, ok := ts.m.TypeForOID(oid); ok {
		if ac, ok := t.Codec.(*pgtype.ArrayCodec); ok {
			ti.elem = ac.ElementType.OID
			if oid == pgtype.BoxArrayOID {
				ti.delim = ';'
			}
		}
	} else if ts.lookup != nil {
		typtype, basetype, elem, delim, err := ts.lookup(oid)
		if err != nil {
			return ti, fmt.Errorf("look up type %d: %w", oid, err)
		}
		switch {
		case typtype == 'd':
			bi, err := ts.info(basetype)
			if err != nil {
				return ti, err
			}
			ti = bi
		case elem != 0 && typtype == 'b':
			ti.elem, ti.delim = elem, delim
		}
	}
	ts.known[oid] = ti
	return ti, nil
}

// decode converts the text form of a value of type oid into a JSON-like
// value; see the type mapping table in README.md.
func (ts *types) decode(oid uint32, text []byte) (any, error) {
	ti, err := ts.info(oid)
	if err != nil {
		return nil, err
	}
	if ti.elem != 0 {
		return ts.decodeArray(ti, text)
	}
	return ts.decodeScalar(ti.base, text)
}

func (ts *types) decodeScalar(oid uint32, text []byte) (any, error) {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID, pgtype.XIDOID, pgtype.CIDOID:
		n, err := strconv.ParseInt(string(text), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("integer %q: %w", text, err)
		}
		return n, nil
	case pgtype.NumericOID:
		s := string(text)
		if s == "NaN" || strings.HasSuffix(s, "Infinity") {
			return s, nil
		}
		return json.Number(s), nil
	case pgtype.Float4OID, pgtype.Float8OID:
		s := string(text)
		if s == "NaN" || strings.HasSuffix(s, "Infinity") {
			return s, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("float %q: %w", text, err)
		}
		return f, nil
	case pgtype.BoolOID:
		return len(text) > 0 && text[0] == 't', nil
	case pgtype.JSONOID, pgtype.JSONBOID:
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("json: %w", err)
		}
		return v, nil
	case pgtype.ByteaOID:
		if !bytes.HasPrefix(text, []byte(`\x`)) {
			return nil, errors.New(`bytea not in hex form: set bytea_output = hex`)
		}
		out := make([]byte, hex.DecodedLen(len(text)-2))
		if _, err := hex.Decode(out, text[2:]); err != nil {
			return nil, fmt.Errorf("bytea: %w", err)
		}
		return out, nil
	case pgtype.TimestamptzOID:
		s := string(text)
		if s == "infinity" || s == "-infinity" {
			return s, nil
		}
		var t pgtype.Timestamptz
		if err := ts.m.Scan(pgtype.TimestamptzOID, pgtype.TextFormatCode, text, &t); err != nil {
			return nil, fmt.Errorf("timestamptz %q: %w", text, err)
		}
		return t.Time.UTC(), nil
	case pgtype.TimestampOID:
		// No zone: ISO 8601 local date-time, "2024-05-01T12:30:00.5".
		return strings.Replace(string(text), " ", "T", 1), nil
	}
	// text, varchar, char, name, uuid, date, time, timetz, interval
	// (iso_8601), enums and every other type: their text form.
	return string(text), nil
}

// decodeArray parses PostgreSQL's array text form into nested []any,
// decoding each element as its element type.
func (ts *types) decodeArray(ti typeInfo, text []byte) (any, error) {
	// A leading dimension decoration such as "[0:1]={1,2}" is dropped.
	if len(text) > 0 && text[0] == '[' {
		if i := bytes.IndexByte(text, '='); i >= 0 {
			text = text[i+1:]
		}
	}
	p := arrayParser{src: text, delim: ti.delim}
	v, err := p.parse(func(elem []byte) (any, error) { return ts.decode(ti.elem, elem) })
	if err != nil {
		return nil, fmt.Errorf("array %q: %w", text, err)
	}
	return v, nil
}

type arrayParser struct {
	src   []byte
	i     int
	delim byte
}

func (p *arrayParser) parse(elem func([]byte) (any, error)) (any, error) {
	if p.i >= len(p.src) || p.src[p.i] != '{' {
		return nil, errors.New("expected '{'")
	}
	p.i++
	out := []any{}
	if p.i < len(p.src) && p.src[p.i] == '}' {
		p.i++
		return out, nil
	}
	for {
		if p.i >= len(p.src) {
			return nil, errors.New("unterminated array")
		}
		switch c := p.src[p.i]; {
		case c == '{':
			v, err := p.parse(elem)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		case c == '"':
			p.i++
			var b []byte
			for {
				if p.i >= len(p.src) {
					return nil, errors.New("unterminated quoted element")
				}
				c := p.src[p.i]
				p.i++
				if c == '\\' && p.i < len(p.src) {
					b = append(b, p.src[p.i])
					p.i++
					continue
				}
				if c == '"' {
					break
				}
				b = append(b, c)
			}
			v, err := elem(b)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		default:
			start := p.i
			for p.i < len(p.src) && p.src[p.i] != p.delim && p.src[p.i] != '}' {
				p.i++
			}
			tok := bytes.TrimSpace(p.src[start:p.i])
			if string(tok) == "NULL" {
				out = append(out, nil)
				break
			}
			v, err := elem(tok)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if p.i >= len(p.src) {
			return nil, errors.New("unterminated array")
		}
		switch p.src[p.i] {
		case p.delim:
			p.i++
		case '}':
			p.i++
			return out, nil
		default:
			return nil, fmt.Errorf("unexpected %q at %d", p.src[p.i], p.i)
		}
	}
}
