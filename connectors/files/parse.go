package files

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxLine bounds one line of a jsonl or fixed file.
const maxLine = 16 << 20

// recordFunc receives one record: its number in the file (from 1), its
// fields, or the raw text and why it could not be parsed.
type recordFunc func(n int, data map[string]any, raw []byte, perr error) error

// parse reads the records of a file.
func (c *Config) parse(r io.Reader, fn recordFunc) error {
	switch c.Format {
	case FormatCSV:
		return c.parseCSV(r, fn)
	case FormatJSONL:
		return c.parseJSONL(r, fn)
	}
	return c.parseFixed(r, fn)
}

func (c *Config) parseCSV(r io.Reader, fn recordFunc) error {
	cr := csv.NewReader(r)
	d := c.CSV.Delimiter
	if d == `\t` {
		d = "\t"
	}
	cr.Comma, _ = utf8.DecodeRuneInString(d)
	if c.CSV.Comment != "" {
		cr.Comment, _ = utf8.DecodeRuneInString(c.CSV.Comment)
	}
	cr.LazyQuotes = c.CSV.LazyQuotes
	cr.TrimLeadingSpace = c.CSV.TrimSpace
	cr.FieldsPerRecord = -1
	cols := c.CSV.Columns
	if *c.CSV.Header {
		h, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read csv header: %w", err)
		}
		if len(cols) == 0 {
			cols = make([]string, len(h))
			for i, s := range h {
				cols[i] = strings.TrimSpace(strings.TrimPrefix(s, "\ufeff"))
			}
		}
	}
	skip := c.SkipLines
	n := 0
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if skip > 0 {
			skip--
			continue
		}
		n++
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return fmt.Errorf("read csv: %w", err)
			}
			if ferr := fn(n, nil, []byte(strings.Join(rec, string(cr.Comma))), err); ferr != nil {
				return ferr
			}
			continue
		}
		data := make(map[string]any, len(cols))
		for i, v := range rec {
			if c.CSV.TrimSpace {
				v = strings.TrimSpace(v)
			}
			if i < len(cols) {
				data[cols[i]] = v
			} else {
				data["column_"+strconv.Itoa(i+1)] = v
			}
		}
		for i := len(rec); i < len(cols); i++ {
			data[cols[i]] = nil
		}
		if err := fn(n, data, nil, nil); err != nil {
			return err
		}
	}
}

// lines calls fn with every line without its end of line, numbered from 1,
// after skip lines.
func lines(r io.Reader, skip int, fn func(n int, line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	n := 0
	for sc.Scan() {
		if skip > 0 {
			skip--
			continue
		}
		line := bytes.TrimSuffix(sc.Bytes(), []byte{'\r'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		n++
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read line %d: %w", n+1, err)
	}
	return nil
}

func (c *Config) parseJSONL(r io.Reader, fn recordFunc) error {
	return lines(r, 0, func(n int, line []byte) error {
		var data map[string]any
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&data); err != nil || data == nil {
			if err == nil {
				err = errors.New("line is not a JSON object")
			}
			return fn(n, nil, append([]byte(nil), line...), fmt.Errorf("parse JSON: %w", err))
		}
		return fn(n, data, nil, nil)
	})
}

func (c *Config) parseFixed(r io.Reader, fn recordFunc) error {
	return lines(r, c.SkipLines, func(n int, line []byte) error {
		var runes []rune
		ascii := true
		for _, b := range line {
			if b >= utf8.RuneSelf {
				ascii = false
				break
			}
		}
		if !ascii {
			runes = []rune(string(line))
		}
		width := len(line)
		if !ascii {
			width = len(runes)
		}
		data := make(map[string]any, len(c.Fixed.Fields))
		var perr error
		for _, f := range c.Fixed.Fields {
			start, end := f.Start-1, f.Start-1+f.Length
			var v string
			switch {
			case start >= width:
			case ascii:
				v = string(line[start:min(end, width)])
			default:
				v = string(runes[start:min(end, width)])
			}
			if *f.Trim {
				v = strings.TrimSpace(v)
			}
			switch f.Type {
			case TypeInt:
				if v == "" {
					data[f.Name] = nil
					continue
				}
				i, err := strconv.ParseInt(strings.TrimLeft(v, "+"), 10, 64)
				if err != nil && perr == nil {
					perr = fmt.Errorf("field %s (columns %d-%d): %q is not an integer", f.Name, f.Start, end, v)
				}
				data[f.Name] = i
			case TypeDecimal:
				if v == "" {
					data[f.Name] = nil
					continue
				}
				d, ok := normDecimal(v)
				if !ok && perr == nil {
					perr = fmt.Errorf("field %s (columns %d-%d): %q is not a decimal", f.Name, f.Start, end, v)
				}
				data[f.Name] = d
			default:
				data[f.Name] = v
			}
		}
		if perr != nil {
			return fn(n, nil, append([]byte(nil), line...), perr)
		}
		return fn(n, data, nil, nil)
	})
}

// normDecimal returns a decimal as an exact JSON number: an optional minus,
// no leading zeros, the fraction as written.
func normDecimal(v string) (json.Number, bool) {
	neg := false
	switch {
	case strings.HasPrefix(v, "-"):
		neg, v = true, v[1:]
	case strings.HasPrefix(v, "+"):
		v = v[1:]
	}
	intPart, frac, hasFrac := strings.Cut(v, ".")
	if intPart == "" && frac == "" {
		return "", false
	}
	for _, s := range []string{intPart, frac} {
		for _, c := range s {
			if c < '0' || c > '9' {
				return "", false
			}
		}
	}
	intPart = strings.TrimLeft(intPart, "0")
	if intPart == "" {
		intPart = "0"
	}
	out := intPart
	if hasFrac && frac != "" {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return json.Number(out), true
}
