package files

import (
	"bytes"
	"errors"
	"io"
)

// CSVRecord is one record of ReadCSV.
type CSVRecord struct {
	Line   int
	Fields []string
	Raw    string
	Err    error
}

// ReadCSV reads data as the csv format does, for the differential fuzz
// test against encoding/csv.
func ReadCSV(data []byte, comma, comment rune, trim, lazy bool) ([]CSVRecord, error) {
	r := newCSVReader(bytes.NewReader(data), comma, comment, trim, lazy)
	var out []CSVRecord
	for {
		rec, err := r.read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, CSVRecord{Line: rec.line, Fields: rec.fields, Raw: string(rec.raw), Err: rec.err})
	}
}
