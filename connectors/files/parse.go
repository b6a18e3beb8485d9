package files

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxLine bounds one line of a file, and one record of a csv file.
const maxLine = 16 << 20

// record is one record of a file.
type record struct {
	// n numbers the file's records from 1, in order: the record's
	// position. Blank, comment, header and skipped lines are not records.
	n int
	// line is the physical line the record starts on, from 1, counting
	// every line of the file: header, skipped, blank and comment lines
	// included.
	line int
	// data holds the record's fields; nil when err is set.
	data map[string]any
	// raw is the record's bytes as they are in the file, without its final
	// line end; set when err is. It is only valid during the call.
	raw []byte
	// err says why the record could not be parsed; its text starts with
	// "line N", N being line.
	err error
}

// recordFunc receives the records of a file, in order.
type recordFunc func(rec record) error

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

// lineReader reads the physical lines of a file, numbered from 1, and
// takes lines back to read them again.
type lineReader struct {
	br   *bufio.Reader
	num  int      // the number of the last line returned
	back [][]byte // lines given back, returned before br's
	long []byte   // a line longer than br's buffer
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line with its line end ("\n", "\r\n", or none at
// the end of the file) and its number. The line is valid until the next
// call. It returns io.EOF after the last line, and an error for a line
// longer than maxLine.
func (lr *lineReader) next() ([]byte, int, error) {
	if len(lr.back) > 0 {
		line := lr.back[0]
		lr.back = lr.back[1:]
		lr.num++
		return line, lr.num, nil
	}
	line, err := lr.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		lr.long = append(lr.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(lr.long) > maxLine {
				return nil, lr.num + 1, fmt.Errorf("line %d is longer than %d MiB", lr.num+1, maxLine>>20)
			}
			line, err = lr.br.ReadSlice('\n')
			lr.long = append(lr.long, line...)
		}
		line = lr.long
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, lr.num + 1, fmt.Errorf("read line %d: %w", lr.num+1, err)
	}
	if len(line) == 0 {
		return nil, lr.num, io.EOF
	}
	lr.num++
	return line, lr.num, nil
}

// unread gives back lines, the last ones next returned, in order: next
// returns them again, with the same numbers.
func (lr *lineReader) unread(ls [][]byte) {
	lr.back = append(ls, lr.back...)
	lr.num -= len(ls)
}

// body returns line without its line end. As encoding/csv does, a "\r"
// before the end of the file counts as a line end too.
func body(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'})
}

// lines calls fn with every line that is not blank, after skip lines,
// without its line end: n counts those lines from 1, num is the physical
// line number.
func lines(r io.Reader, skip int, fn func(n, num int, line []byte) error) error {
	lr := newLineReader(r)
	n := 0
	for {
		raw, num, err := lr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if skip > 0 {
			skip--
			continue
		}
		line := body(raw)
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		n++
		if err := fn(n, num, line); err != nil {
			return err
		}
	}
}

func (c *Config) parseJSONL(r io.Reader, fn recordFunc) error {
	return lines(r, 0, func(n, num int, line []byte) error {
		var data map[string]any
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		err := dec.Decode(&data)
		if err == nil && len(bytes.TrimSpace(line[dec.InputOffset():])) > 0 {
			err = fmt.Errorf("text after the JSON object, at column %d", dec.InputOffset()+1)
		}
		if err != nil || data == nil {
			if err == nil {
				err = errors.New("line is not a JSON object")
			}
			return fn(record{n: n, line: num, raw: line, err: fmt.Errorf("line %d: parse JSON: %w", num, err)})
		}
		return fn(record{n: n, line: num, data: data})
	})
}

func (c *Config) parseFixed(r io.Reader, fn recordFunc) error {
	return lines(r, c.SkipLines, func(n, num int, line []byte) error {
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
			if f.Trim {
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
					perr = fmt.Errorf("line %d: field %s (columns %d-%d): %q is not an integer", num, f.Name, f.Start, end, v)
				}
				data[f.Name] = i
			case TypeDecimal:
				if v == "" {
					data[f.Name] = nil
					continue
				}
				d, ok := normDecimal(v)
				if !ok && perr == nil {
					perr = fmt.Errorf("line %d: field %s (columns %d-%d): %q is not a decimal", num, f.Name, f.Start, end, v)
				}
				data[f.Name] = d
			default:
				data[f.Name] = v
			}
		}
		if perr != nil {
			return fn(record{n: n, line: num, raw: line, err: perr})
		}
		return fn(record{n: n, line: num, data: data})
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
