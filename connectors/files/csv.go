package files

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// csvReader reads the records of a csv file. It finds where each record
// ends (a line, or several when a quoted field holds line ends) by
// following encoding/csv's own state machine, then hands the record's
// bytes to encoding/csv for its fields. Framing records itself lets it
// keep each record's bytes and first line, and recover from a quote that
// is never closed: when a record spanning several lines does not parse,
// or a quote stays open to the end of the file, its first line alone is a
// parse error and reading resumes at the next line. So a broken quote
// costs its own line, never the lines after it.
type csvReader struct {
	lines    *lineReader
	comma    rune
	commaLen int
	comment  rune
	trim     bool

	// lazy follows csv.Reader.LazyQuotes: a quote inside a quoted field
	// that is not followed by a delimiter or a line end is taken as text.
	lazy bool

	buf  []byte // the record being read, line ends included
	ends []int  // the end in buf of each of its lines
	src  bytes.Reader
	cr   *csv.Reader
	br   *bufio.Reader // cr's reader, reset on src for each record
}

// csvRecord is one record of a csv file.
type csvRecord struct {
	line   int      // the physical line it starts on
	fields []string // its fields, when err is nil
	raw    []byte   // its bytes without the final line end, valid until the next read
	err    error    // why it does not parse; the text starts with "line N"
}

func newCSVReader(r io.Reader, comma, comment rune, trim, lazy bool) *csvReader {
	cr := &csvReader{
		lines: newLineReader(r), comma: comma, commaLen: utf8.RuneLen(comma),
		comment: comment, trim: trim, lazy: lazy,
	}
	// csv.NewReader uses a *bufio.Reader as it is: resetting br on each
	// record's bytes reuses one csv.Reader for the whole file.
	cr.br = bufio.NewReader(&cr.src)
	cr.cr = csv.NewReader(cr.br)
	cr.cr.Comma, cr.cr.Comment = comma, comment
	cr.cr.LazyQuotes, cr.cr.TrimLeadingSpace = lazy, trim
	cr.cr.FieldsPerRecord = -1
	return cr
}

// read returns the next record, io.EOF after the last one, or another
// error when the file cannot be read. Blank lines, and lines starting with
// the comment character, are not records.
func (r *csvReader) read() (csvRecord, error) {
	var (
		line []byte
		num  int
		err  error
	)
	for {
		line, num, err = r.lines.next()
		if err != nil {
			return csvRecord{}, err
		}
		b := body(line)
		if len(b) > 0 && (r.comment == 0 || r.comment != firstRune(b)) {
			break
		}
	}
	r.buf = append(r.buf[:0], line...)
	r.ends = append(r.ends[:0], len(r.buf))
	open, col := r.scan(body(line), false)
	eof := false
	for open && len(r.buf) <= maxLine {
		next, _, err := r.lines.next()
		if errors.Is(err, io.EOF) {
			eof = true
			break
		}
		if err != nil {
			return csvRecord{}, err
		}
		r.buf = append(r.buf, next...)
		r.ends = append(r.ends, len(r.buf))
		open, _ = r.scan(body(next), true)
	}
	if open {
		why := "still open at the end of the file"
		if !eof {
			why = fmt.Sprintf("still open after %d MiB", maxLine>>20)
		}
		return r.alone(num, col, why), nil
	}
	r.src.Reset(r.buf)
	r.br.Reset(&r.src)
	fields, err := r.cr.Read()
	if err == nil {
		return csvRecord{line: num, fields: fields, raw: body(r.buf)}, nil
	}
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return csvRecord{}, fmt.Errorf("read the record on line %d: %w", num, err)
	}
	at := num + pe.Line - pe.StartLine
	if len(r.ends) > 1 {
		return r.alone(num, col, fmt.Sprintf("the record it starts fails on line %d, column %d: %v", at, pe.Column, pe.Err)), nil
	}
	return csvRecord{line: num, raw: body(r.buf), err: fmt.Errorf("line %d, column %d: %w", at, pe.Column, pe.Err)}, nil
}

// alone makes the first line of the record in buf, line num, a parse
// error: the quoted field opened at column col is not closed on its line,
// and the record does not parse as several lines, for the reason why. The
// lines after the first are given back, to be read again.
func (r *csvReader) alone(num, col int, why string) csvRecord {
	rest := make([][]byte, 0, len(r.ends)-1)
	for i := 1; i < len(r.ends); i++ {
		rest = append(rest, bytes.Clone(r.buf[r.ends[i-1]:r.ends[i]]))
	}
	r.lines.unread(rest)
	return csvRecord{
		line: num,
		raw:  body(r.buf[:r.ends[0]]),
		err:  fmt.Errorf("line %d, column %d: unterminated quoted field, read as this line alone (%s)", num, col, why),
	}
}

// scan follows encoding/csv's parse of one line of a record, b without its
// line end, from the start of a field (quoted false) or inside a quoted
// field (quoted true). It reports whether the line ends inside a quoted
// field, so that the record goes on with the next line, and the column
// (1-based byte index) of the quote that opened that field when it is on
// this line. A line on which encoding/csv meets an error ends its record,
// as encoding/csv ends it.
func (r *csvReader) scan(b []byte, quoted bool) (open bool, col int) {
	i := 0
	for {
		if !quoted {
			if r.trim {
				j := bytes.IndexFunc(b[i:], func(c rune) bool { return !unicode.IsSpace(c) })
				if j < 0 {
					return false, 0
				}
				i += j
			}
			if i >= len(b) || b[i] != '"' {
				j := bytes.IndexRune(b[i:], r.comma)
				end := len(b)
				if j >= 0 {
					end = i + j
				}
				if !r.lazy && bytes.IndexByte(b[i:end], '"') >= 0 {
					return false, 0 // a bare quote: the record ends here, in error
				}
				if j < 0 {
					return false, 0
				}
				i = end + r.commaLen
				continue
			}
			col = i + 1
			i++
		}
		quoted = false
		for closed := false; !closed; {
			j := bytes.IndexByte(b[i:], '"')
			if j < 0 {
				return true, col
			}
			i += j + 1
			switch c := firstRune(b[i:]); {
			case i == len(b):
				return false, 0 // a quote and the line end close the record
			case c == '"':
				i++
			case c == r.comma:
				i += r.commaLen
				closed = true
			case r.lazy:
				// A quote taken as text.
			default:
				return false, 0 // a stray quote: the record ends here, in error
			}
		}
		col = 0
	}
}

// firstRune returns the first rune of b, utf8.RuneError when b is empty.
func firstRune(b []byte) rune {
	c, _ := utf8.DecodeRune(b)
	return c
}

func (c *Config) parseCSV(r io.Reader, fn recordFunc) error {
	d := c.CSV.Delimiter
	if d == `\t` {
		d = "\t"
	}
	comma, _ := utf8.DecodeRuneInString(d)
	var comment rune
	if c.CSV.Comment != "" {
		comment, _ = utf8.DecodeRuneInString(c.CSV.Comment)
	}
	cr := newCSVReader(r, comma, comment, c.CSV.TrimSpace, c.CSV.LazyQuotes)
	n := 0
	cols := c.CSV.Columns
	// headerErr, when the header does not parse, makes every record of
	// the file a parse error: without its columns, no record can be read.
	var headerErr error
	if c.CSV.Header {
		h, err := cr.read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read csv header: %w", err)
		}
		if h.err != nil {
			headerErr = fmt.Errorf("the header on line %d does not parse", h.line)
			n++
			if err := fn(record{n: n, line: h.line, raw: h.raw, err: fmt.Errorf("header %w", h.err)}); err != nil {
				return err
			}
		} else if len(cols) == 0 {
			cols = make([]string, len(h.fields))
			for i, s := range h.fields {
				cols[i] = strings.TrimSpace(strings.TrimPrefix(s, "\ufeff"))
			}
		}
	}
	for range c.SkipLines {
		if _, _, err := cr.lines.next(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
	for {
		rec, err := cr.read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		n++
		if rec.err == nil && headerErr != nil {
			rec.err = fmt.Errorf("line %d: %w", rec.line, headerErr)
		}
		if rec.err != nil {
			if err := fn(record{n: n, line: rec.line, raw: rec.raw, err: rec.err}); err != nil {
				return err
			}
			continue
		}
		data := make(map[string]any, max(len(cols), len(rec.fields)))
		for i, v := range rec.fields {
			if c.CSV.TrimSpace {
				v = strings.TrimSpace(v)
			}
			if i < len(cols) {
				data[cols[i]] = v
			} else {
				data["column_"+strconv.Itoa(i+1)] = v
			}
		}
		for i := len(rec.fields); i < len(cols); i++ {
			data[cols[i]] = nil
		}
		if err := fn(record{n: n, line: rec.line, data: data}); err != nil {
			return err
		}
	}
}
