package files_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	connector "github.com/tributary/tributary/connectors/files"
)

// FuzzCSVAgainstLibrary checks the csv format's reader against
// encoding/csv, which it stands on: where it finds no parse error, its
// records are encoding/csv's, read from the whole input; where encoding/csv
// reads the whole input without error (and quotes are strict), so does it.
// And whatever the input, every line is part of exactly one record, or
// blank, or a comment: each record's bytes are its lines, as in the input.
func FuzzCSVAgainstLibrary(f *testing.F) {
	for _, s := range []string{
		"a,b\n1,2\n",
		"id,item\nS002,\"MS-2,3\nS003,x\nS004,\"MS-4\",1\n",
		"1,\"two\nlines\",3\r\n4,5,6",
		"# c\n\n1;\"a\"\"b\";c\n",
		"x, \"y\" ,z\n\"open",
		"1,x\"y\n2,\"a\"b\n3,\"\"\n\r\n",
		"\"\n\"\n\"",
		"a\r\r\nb\r",
	} {
		f.Add([]byte(s), byte(','), byte(0), false, false)
		f.Add([]byte(s), byte(';'), byte('#'), true, false)
		f.Add([]byte(s), byte(','), byte('#'), false, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, comma, comment byte, trim, lazy bool) {
		commaR, commentR := rune(comma), rune(comment)
		if commaR == 0 || !validDelim(commaR) || commentR == commaR || (commentR != 0 && !validDelim(commentR)) {
			return
		}
		got, err := connector.ReadCSV(data, commaR, commentR, trim, lazy)
		if err != nil {
			t.Fatalf("ReadCSV: %v", err)
		}
		lib := csv.NewReader(bytes.NewReader(data))
		lib.Comma, lib.Comment, lib.TrimLeadingSpace, lib.LazyQuotes, lib.FieldsPerRecord = commaR, commentR, trim, lazy, -1
		var want [][]string
		var libErr error
		for {
			rec, err := lib.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				libErr = err
				break
			}
			want = append(want, rec)
		}
		var fields [][]string
		failed := false
		for _, r := range got {
			if r.Err != nil {
				failed = true
			}
			fields = append(fields, r.Fields)
		}
		if !failed && (libErr != nil || !slices.EqualFunc(fields, want, slices.Equal)) {
			t.Fatalf("input %q: records %q, encoding/csv reads %q (error %v)", data, fields, want, libErr)
		}
		if failed && libErr == nil && !lazy {
			t.Fatalf("input %q: records %+v, encoding/csv reads them all: %q", data, got, want)
		}
		// Every line belongs to one record, or is blank or a comment.
		lines := strings.SplitAfter(string(data), "\n")
		next := 1
		for _, r := range got {
			for ; next < r.Line; next++ {
				b := strings.TrimSuffix(strings.TrimSuffix(lines[next-1], "\n"), "\r")
				if b != "" && (commentR == 0 || !strings.HasPrefix(b, string(commentR))) {
					t.Fatalf("input %q: line %d (%q) is in no record: %+v", data, next, lines[next-1], got)
				}
			}
			if r.Line != next {
				t.Fatalf("input %q: record on line %d, the line after the last record is %d: %+v", data, r.Line, next, got)
			}
			n := strings.Count(r.Raw, "\n") + 1
			raw := strings.Join(lines[r.Line-1:r.Line-1+n], "")
			if strings.TrimSuffix(strings.TrimSuffix(raw, "\n"), "\r") != r.Raw {
				t.Fatalf("input %q: record on line %d holds %q, its lines are %q", data, r.Line, r.Raw, raw)
			}
			next += n
		}
	})
}

// validDelim is encoding/csv's rule for a delimiter or comment character.
func validDelim(r rune) bool {
	return r != 0 && r != '"' && r != '\r' && r != '\n' && r < 0x80
}
