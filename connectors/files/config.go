package files

import (
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

// Config is the files_poll connector's configuration. Each field declares
// its key (see core.FieldsOf); the README's Configuration section says more.
type Config struct {
	poll.ScheduleConfig `yaml:",inline"`
	Dir                 string        `yaml:"dir" required:"true" example:"/data/inbox" doc:"Directory polled for files."`
	Pattern             string        `yaml:"pattern" default:"*" example:"orders-*.csv" doc:"File names to read (glob); marker files and names starting with . are never read."`
	Format              string        `yaml:"format" required:"true" enum:"csv,jsonl,fixed" doc:"csv (RFC 4180 quoting), jsonl (one JSON object a line) or fixed (fixed-width columns laid out in fixed.fields)."`
	CSV                 CSVConfig     `yaml:"csv" doc:"CSV parsing."`
	Fixed               FixedConfig   `yaml:"fixed" doc:"Fixed-width record layout."`
	SkipLines           int           `yaml:"skip_lines" default:"0" doc:"Lines skipped at the top of csv (after the header) and fixed files, such as a banner."`
	Key                 []string      `yaml:"key" example:"[order_id]" doc:"Record fields forming the change key; default the file name and line number."`
	Ready               string        `yaml:"ready" default:"stable" enum:"stable,marker" doc:"When a file is complete: stable (size and modification time unchanged between two polls and older than stable_for) or marker (a file named like it plus marker_suffix exists)."`
	StableFor           time.Duration `yaml:"stable_for" default:"5s" doc:"Least age of a file's last modification before it is read (ready: stable)."`
	MarkerSuffix        string        `yaml:"marker_suffix" default:".done" doc:"Suffix of marker files (ready: marker)."`
	After               string        `yaml:"after" default:"move" enum:"move,delete,keep" doc:"What happens to a file once all its records are on the stream: moved to done_dir, deleted, or kept (and remembered by checksum)."`
	// DoneDir is empty for the default, dir/done: see doneDir.
	DoneDir     string `yaml:"done_dir" example:"/data/done" doc:"Directory processed files move to (after: move); default dir/done."`
	PageSize    int    `yaml:"page_size" default:"1000" doc:"Records per batch."`
	ParseErrors string `yaml:"parse_errors" default:"dead_letter" enum:"dead_letter,rules,skip,fail" doc:"A record that does not parse: dead_letter (to the dead-letter stream with its bytes and line, no rule applied), rules (to the rules, with meta.parse_error and meta.raw), skip (dropped, counted in the status) or fail (the connector stops, the file stays)."`
}

// CSVConfig configures CSV parsing.
type CSVConfig struct {
	Delimiter  string   `yaml:"delimiter" default:"," doc:"Field separator, one character (use \"\\t\" for tabs)."`
	Header     bool     `yaml:"header" default:"true" doc:"The first row names the columns."`
	Columns    []string `yaml:"columns" doc:"Column names when there is no header row."`
	Comment    string   `yaml:"comment" doc:"Lines starting with this character are skipped."`
	LazyQuotes bool     `yaml:"lazy_quotes" default:"false" doc:"Accept quotes inside unquoted fields."`
	TrimSpace  bool     `yaml:"trim_space" default:"false" doc:"Remove spaces around values."`
}

// FixedConfig is a fixed-width record layout.
type FixedConfig struct {
	Fields []FixedField `yaml:"fields" doc:"The fields of a record, each length characters from column start (1-based)."`
}

// FixedField is one field of a fixed-width record: Length characters from
// column Start (1-based).
type FixedField struct {
	Name   string `yaml:"name" required:"true" doc:"Field name in the change."`
	Start  int    `yaml:"start" required:"true" doc:"First column, from 1."`
	Length int    `yaml:"length" required:"true" doc:"Width in characters."`
	Type   string `yaml:"type" default:"string" enum:"string,int,decimal" doc:"string, int or decimal (exact)."`
	Trim   bool   `yaml:"trim" default:"true" doc:"Remove surrounding spaces."`
}

// doneDir is the directory processed files move to: done_dir, or dir/done
// when it is not set.
func (c *Config) doneDir() string {
	if c.DoneDir == "" {
		return filepath.Join(c.Dir, "done")
	}
	return c.DoneDir
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, core.FieldErrorf(path, format, args...))
	}
	if err := c.ScheduleConfig.Validate(); err != nil {
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
		c.CSV.validate(add)
	case FormatJSONL:
	case FormatFixed:
		c.Fixed.validate(add)
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

// problems records a problem of the key at path.
type problems func(path, format string, args ...any)

// validate checks the csv block of format csv.
func (c *CSVConfig) validate(add problems) {
	if utf8.RuneCountInString(c.Delimiter) != 1 && c.Delimiter != `\t` {
		add("csv.delimiter", "%q must be one character", c.Delimiter)
	} else if strings.ContainsAny(c.Delimiter, "\"\r\n\ufffd") {
		add("csv.delimiter", "%q cannot separate fields: use a character other than a quote or a line end, such as \",\" or \";\"", c.Delimiter)
	}
	if utf8.RuneCountInString(c.Comment) > 1 {
		add("csv.comment", "%q must be one character", c.Comment)
	} else if c.Comment != "" && (c.Comment == c.Delimiter || strings.ContainsAny(c.Comment, "\"\r\n\ufffd")) {
		add("csv.comment", "%q cannot start comments: use a character other than the delimiter, a quote or a line end, such as \"#\"", c.Comment)
	}
	if !c.Header && len(c.Columns) == 0 {
		add("csv.columns", "name the columns when csv.header is false")
	}
}

// validate checks the layout of format fixed.
func (c *FixedConfig) validate(add problems) {
	if len(c.Fields) == 0 {
		add("fixed.fields", "is required for format fixed: list each field's name, start and length")
	}
	seen := map[string]bool{}
	for i, f := range c.Fields {
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
}
