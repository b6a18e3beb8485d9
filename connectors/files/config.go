package files

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tributary/tributary/adapters/poll"
	"github.com/tributary/tributary/core"
)

// Formats of the format field.
const (
	FormatCSV   = "csv"
	FormatJSONL = "jsonl"
	FormatFixed = "fixed"
)

// Readiness checks of the ready field.
const (
	ReadyStable = "stable" // size and modification time unchanged for stable_for
	ReadyMarker = "marker" // a marker file (name + marker_suffix) exists
)

// What happens to a processed file (the after field).
const (
	AfterMove   = "move"
	AfterDelete = "delete"
	AfterKeep   = "keep"
)

// What happens to a record that does not parse (the parse_errors field).
const (
	// ParseErrorsDeadLetter sends it to the dead-letter stream, with its
	// bytes and line, without applying any rule.
	ParseErrorsDeadLetter = "dead_letter"
	// ParseErrorsRules hands it to the rules, with meta.parse_error and
	// meta.raw set and no after.
	ParseErrorsRules = "rules"
	// ParseErrorsSkip drops it; the status counts it.
	ParseErrorsSkip = "skip"
	// ParseErrorsFail stops the connector, leaving the file in place.
	ParseErrorsFail = "fail"
)

// Types of fixed-width fields.
const (
	TypeString  = "string"
	TypeInt     = "int"
	TypeDecimal = "decimal"
)

// Defaults.
const (
	DefaultStableFor = 5 * time.Second
	DefaultPageSize  = 1000
)

// Config is the files_poll connector's configuration.
type Config struct {
	poll.ScheduleConfig `yaml:",inline"`
	// Dir is the directory polled.
	Dir string `yaml:"dir"`
	// Pattern selects file names (path.Match syntax).
	Pattern string `yaml:"pattern"`
	// Format is csv, jsonl or fixed.
	Format string `yaml:"format"`
	// CSV configures the csv format.
	CSV CSVConfig `yaml:"csv"`
	// Fixed is the record layout of the fixed format.
	Fixed FixedConfig `yaml:"fixed"`
	// SkipLines is how many lines to skip at the top of csv and fixed files
	// (after the csv header, when there is one).
	SkipLines int `yaml:"skip_lines"`
	// Key lists record fields forming the change key; default file and line.
	Key []string `yaml:"key"`
	// Ready says when a file is complete.
	Ready string `yaml:"ready"`
	// StableFor is how long size and modification time must stay unchanged.
	StableFor time.Duration `yaml:"stable_for"`
	// MarkerSuffix names the marker file of ready: marker.
	MarkerSuffix string `yaml:"marker_suffix"`
	// After is move, delete or keep.
	After string `yaml:"after"`
	// DoneDir receives moved files.
	DoneDir string `yaml:"done_dir"`
	// PageSize is how many records one batch carries.
	PageSize int `yaml:"page_size"`
	// ParseErrors is dead_letter, rules, skip or fail.
	ParseErrors string `yaml:"parse_errors"`
}

// CSVConfig configures CSV parsing.
type CSVConfig struct {
	Delimiter  string   `yaml:"delimiter"`
	Header     *bool    `yaml:"header"`
	Columns    []string `yaml:"columns"`
	Comment    string   `yaml:"comment"`
	LazyQuotes bool     `yaml:"lazy_quotes"`
	TrimSpace  bool     `yaml:"trim_space"`
}

// FixedConfig is a fixed-width record layout.
type FixedConfig struct {
	Fields []FixedField `yaml:"fields"`
}

// FixedField is one field of a fixed-width record: Length characters from
// column Start (1-based).
type FixedField struct {
	Name   string `yaml:"name"`
	Start  int    `yaml:"start"`
	Length int    `yaml:"length"`
	Type   string `yaml:"type"`
	// Trim removes surrounding spaces; default true.
	Trim *bool `yaml:"trim"`
}

// Fields declares the configuration for the registry.
func Fields() []core.Field {
	f := []core.Field{
		{Name: "dir", Type: core.TypeString, Required: true, Example: "/data/inbox", Doc: "Directory polled for files."},
		{Name: "pattern", Type: core.TypeString, Default: "*", Example: "orders-*.csv", Doc: "File names to read (glob); marker files and names starting with . are never read."},
		{Name: "format", Type: core.TypeString, Required: true, Enum: []string{FormatCSV, FormatJSONL, FormatFixed},
			Doc: "csv (RFC 4180 quoting), jsonl (one JSON object a line) or fixed (fixed-width columns laid out in fixed.fields)."},
		{Name: "csv", Type: core.TypeObject, Doc: "CSV parsing.", Fields: []core.Field{
			{Name: "delimiter", Type: core.TypeString, Default: ",", Doc: "Field separator, one character (use \"\\t\" for tabs)."},
			{Name: "header", Type: core.TypeBool, Default: true, Doc: "The first row names the columns."},
			{Name: "columns", Type: core.TypeStrings, Doc: "Column names when there is no header row."},
			{Name: "comment", Type: core.TypeString, Doc: "Lines starting with this character are skipped."},
			{Name: "lazy_quotes", Type: core.TypeBool, Default: false, Doc: "Accept quotes inside unquoted fields."},
			{Name: "trim_space", Type: core.TypeBool, Default: false, Doc: "Remove spaces around values."},
		}},
		{Name: "fixed", Type: core.TypeObject, Doc: "Fixed-width record layout.", Fields: []core.Field{
			{Name: "fields", Type: core.TypeObjects, Doc: "The fields of a record, each length characters from column start (1-based).", Fields: []core.Field{
				{Name: "name", Type: core.TypeString, Required: true, Doc: "Field name in the change."},
				{Name: "start", Type: core.TypeInt, Required: true, Doc: "First column, from 1."},
				{Name: "length", Type: core.TypeInt, Required: true, Doc: "Width in characters."},
				{Name: "type", Type: core.TypeString, Default: TypeString, Enum: []string{TypeString, TypeInt, TypeDecimal}, Doc: "string, int or decimal (exact)."},
				{Name: "trim", Type: core.TypeBool, Default: true, Doc: "Remove surrounding spaces."},
			}},
		}},
		{Name: "skip_lines", Type: core.TypeInt, Default: 0, Doc: "Lines skipped at the top of csv (after the header) and fixed files, such as a banner."},
		{Name: "key", Type: core.TypeStrings, Example: "[order_id]", Doc: "Record fields forming the change key; default the file name and line number."},
		{Name: "ready", Type: core.TypeString, Default: ReadyStable, Enum: []string{ReadyStable, ReadyMarker},
			Doc: "When a file is complete: stable (size and modification time unchanged between two polls and older than stable_for) or marker (a file named like it plus marker_suffix exists)."},
		{Name: "stable_for", Type: core.TypeDuration, Default: DefaultStableFor.String(), Doc: "Least age of a file's last modification before it is read (ready: stable)."},
		{Name: "marker_suffix", Type: core.TypeString, Default: ".done", Doc: "Suffix of marker files (ready: marker)."},
		{Name: "after", Type: core.TypeString, Default: AfterMove, Enum: []string{AfterMove, AfterDelete, AfterKeep},
			Doc: "What happens to a file once all its records are on the stream: moved to done_dir, deleted, or kept (and remembered by checksum)."},
		{Name: "done_dir", Type: core.TypeString, Example: "/data/done", Doc: "Directory processed files move to (after: move); default dir/done."},
		{Name: "page_size", Type: core.TypeInt, Default: DefaultPageSize, Doc: "Records per batch."},
		{Name: "parse_errors", Type: core.TypeString, Default: ParseErrorsDeadLetter, Enum: []string{ParseErrorsDeadLetter, ParseErrorsRules, ParseErrorsSkip, ParseErrorsFail},
			Doc: "A record that does not parse: dead_letter (to the dead-letter stream with its bytes and line, no rule applied), rules (to the rules, with meta.parse_error and meta.raw), skip (dropped, counted in the status) or fail (the connector stops, the file stays)."},
	}
	return append(poll.ScheduleFields(), f...)
}

func (c *Config) applyDefaults() {
	c.ScheduleConfig.ApplyDefaults()
	if c.Pattern == "" {
		c.Pattern = "*"
	}
	if c.CSV.Delimiter == "" {
		c.CSV.Delimiter = ","
	}
	if c.CSV.Header == nil {
		t := len(c.CSV.Columns) == 0
		c.CSV.Header = &t
	}
	for i := range c.Fixed.Fields {
		f := &c.Fixed.Fields[i]
		if f.Type == "" {
			f.Type = TypeString
		}
		if f.Trim == nil {
			t := true
			f.Trim = &t
		}
	}
	if c.Ready == "" {
		c.Ready = ReadyStable
	}
	if c.StableFor == 0 && c.Ready == ReadyStable {
		c.StableFor = DefaultStableFor
	}
	if c.MarkerSuffix == "" {
		c.MarkerSuffix = ".done"
	}
	if c.After == "" {
		c.After = AfterMove
	}
	if c.DoneDir == "" && c.Dir != "" {
		c.DoneDir = filepath.Join(c.Dir, "done")
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.ParseErrors == "" {
		c.ParseErrors = ParseErrorsDeadLetter
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, core.FieldErrorf(path, format, args...))
	}
	pc := poll.Config{Mode: poll.ModeEach, Fetcher: poll.FetcherFunc(func(context.Context, poll.Request, func([]poll.Record) error) error { return nil })}
	c.ScheduleConfig.Apply(&pc)
	if err := pc.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Dir == "" {
		add("dir", "is required: the directory files arrive in")
	}
	if _, err := filepath.Match(c.Pattern, "x"); err != nil {
		add("pattern", "%q is not a glob such as *.csv: %v", c.Pattern, err)
	}
	switch c.Format {
	case FormatCSV:
		if utf8.RuneCountInString(c.CSV.Delimiter) != 1 && c.CSV.Delimiter != `\t` {
			add("csv.delimiter", "%q must be one character", c.CSV.Delimiter)
		} else if strings.ContainsAny(c.CSV.Delimiter, "\"\r\n\ufffd") {
			add("csv.delimiter", "%q cannot separate fields: use a character other than a quote or a line end, such as \",\" or \";\"", c.CSV.Delimiter)
		}
		if utf8.RuneCountInString(c.CSV.Comment) > 1 {
			add("csv.comment", "%q must be one character", c.CSV.Comment)
		} else if c.CSV.Comment != "" && (c.CSV.Comment == c.CSV.Delimiter || strings.ContainsAny(c.CSV.Comment, "\"\r\n\ufffd")) {
			add("csv.comment", "%q cannot start comments: use a character other than the delimiter, a quote or a line end, such as \"#\"", c.CSV.Comment)
		}
		if !*c.CSV.Header && len(c.CSV.Columns) == 0 {
			add("csv.columns", "name the columns when csv.header is false")
		}
	case FormatJSONL:
	case FormatFixed:
		if len(c.Fixed.Fields) == 0 {
			add("fixed.fields", "is required for format fixed: list each field's name, start and length")
		}
		seen := map[string]bool{}
		for i, f := range c.Fixed.Fields {
			p := fmt.Sprintf("fixed.fields[%d]", i)
			if f.Name == "" {
				add(p+".name", "is required")
			} else if seen[f.Name] {
				add(p+".name", "%q is declared twice", f.Name)
			}
			seen[f.Name] = true
			if f.Start < 1 {
				add(p+".start", "%d must be at least 1 (columns count from 1)", f.Start)
			}
			if f.Length < 1 {
				add(p+".length", "%d must be at least 1", f.Length)
			}
			switch f.Type {
			case TypeString, TypeInt, TypeDecimal:
			default:
				add(p+".type", "%q is not one of string, int, decimal", f.Type)
			}
		}
	default:
		add("format", "%q is not one of csv, jsonl, fixed", c.Format)
	}
	if c.SkipLines < 0 {
		add("skip_lines", "%d is negative", c.SkipLines)
	}
	switch c.Ready {
	case ReadyStable:
		if c.StableFor < 0 {
			add("stable_for", "%s is negative", c.StableFor)
		}
	case ReadyMarker:
		if c.MarkerSuffix == "" {
			add("marker_suffix", "is required for ready: marker")
		}
	default:
		add("ready", "%q is not one of stable, marker", c.Ready)
	}
	switch c.After {
	case AfterMove:
		if c.DoneDir != "" && c.Dir != "" && filepath.Clean(c.DoneDir) == filepath.Clean(c.Dir) {
			add("done_dir", "must differ from dir, or files would be read again")
		}
	case AfterDelete, AfterKeep:
	default:
		add("after", "%q is not one of move, delete, keep", c.After)
	}
	if c.PageSize < 1 {
		add("page_size", "%d must be at least 1", c.PageSize)
	}
	switch c.ParseErrors {
	case ParseErrorsDeadLetter, ParseErrorsRules, ParseErrorsSkip, ParseErrorsFail:
	default:
		add("parse_errors", "%q is not one of dead_letter, rules, skip, fail", c.ParseErrors)
	}
	return errors.Join(errs...)
}
