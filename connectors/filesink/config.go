package filesink

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
)

// The formats of the format field.
const (
	// FormatJSONL writes one JSON value a line: the columns as an object,
	// or the sink's map, or the event in CloudEvents JSON.
	FormatJSONL = "jsonl"
	// FormatCSV writes a header line of the column names, then a line of
	// the columns' values per event.
	FormatCSV = "csv"
)

// Config is the files sink's configuration. Each field declares its key
// (see core.FieldsOf); the README's Configuration section says more.
type Config struct {
	Dir        string        `yaml:"dir" required:"true" example:"/srv/drop/orders" doc:"Directory the files are renamed into once complete; created when missing. Files being written are hidden in it under a dot name."`
	Format     string        `yaml:"format" default:"jsonl" enum:"jsonl,csv" doc:"jsonl writes a JSON value a line (the columns, else the sink's map, else the CloudEvent); csv writes a header of the column names and a line per event."`
	Columns    []Column      `yaml:"columns" doc:"The fields of a line, each an expression over the event; required for csv."`
	Name       string        `yaml:"name" example:"orders-{time}-{seq}.csv" doc:"File name pattern: {time} is when the file was started, in time_format (UTC), {seq} a sequence number of six digits that goes on across restarts, {sink} the sink's name. Default {sink}-{time}-{seq}.jsonl (or .csv), with .gz added under gzip."`
	TimeFormat string        `yaml:"time_format" default:"20060102T150405Z" doc:"Go time layout of {time} in name, in UTC."`
	Gzip       bool          `yaml:"gzip" default:"false" doc:"Compress each file with gzip."`
	MaxBytes   int64         `yaml:"max_bytes" default:"67108864" doc:"A file is completed once it holds this many bytes (before compression)."`
	MaxEvents  int           `yaml:"max_events" default:"100000" doc:"A file is completed once it holds this many events; 0 sets no count."`
	MaxAge     time.Duration `yaml:"max_age" default:"1s" doc:"A file is completed this long after its first event: the longest an event waits to be delivered."`
	Linger     time.Duration `yaml:"linger" default:"20ms" doc:"A file is completed once no event was added to it for this long: the sink's Writes all wait for it then, and nothing more comes until it is in place. 0 completes files by max_age, size and count only (fewer files, at most one per max_age under a trickle, and far less throughput)."`
	Mode       string        `yaml:"file_mode" default:"0644" example:"0640" doc:"Permissions of the files, in octal."`
}

// Column is one field of a line and the expression giving it.
type Column struct {
	Name  string `yaml:"name" required:"true" example:"order_id" doc:"Field name: the CSV header, or the JSON key."`
	Value string `yaml:"value" required:"true" example:"event.data.order_id" doc:"Expression over the event giving the field's value; CSV writes its text (numbers with every digit, times in RFC 3339 UTC, lists and objects as JSON)."`
}

var modeRe = regexp.MustCompile(`^0?[0-7]{3}$`)

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, core.FieldErrorf(path, format, args...))
	}
	if strings.TrimSpace(c.Dir) == "" {
		add("dir", "is empty: name the directory the files go to")
	}
	switch c.Format {
	case FormatJSONL:
	case FormatCSV:
		if len(c.Columns) == 0 {
			add("columns", "is required with format: csv: list the fields of a line, each with a name and a value expression")
		}
	default:
		add("format", "%q is not one of jsonl, csv", c.Format)
	}
	var names []string
	for i, col := range c.Columns {
		path := fmt.Sprintf("columns[%d]", i)
		switch {
		case strings.TrimSpace(col.Name) == "":
			add(path+".name", "is empty")
		case slices.Contains(names, col.Name):
			add(path+".name", "%q is listed twice", col.Name)
		}
		names = append(names, col.Name)
		if strings.TrimSpace(col.Value) == "" {
			add(path+".value", "is empty: give the expression of the field, such as event.data.order_id")
		}
	}
	if c.Name != "" {
		switch {
		case strings.ContainsAny(c.Name, `/\`) || filepath.Base(c.Name) != c.Name:
			add("name", "%q is not a file name: it goes in dir, without a directory", c.Name)
		case strings.HasPrefix(c.Name, "."):
			add("name", "%q starts with a dot, which marks the files still being written", c.Name)
		case !strings.Contains(c.Name, "{seq}") && !strings.Contains(c.Name, "{time}"):
			add("name", "%q has neither {seq} nor {time}: every file would have the same name", c.Name)
		}
	}
	if c.TimeFormat == "" || strings.ContainsAny(c.TimeFormat, `/\`) {
		add("time_format", "%q is not a Go time layout usable in a file name, such as 20060102T150405Z", c.TimeFormat)
	}
	if c.MaxBytes < 1 {
		add("max_bytes", "is %d; give at least 1", c.MaxBytes)
	}
	if c.MaxEvents < 0 {
		add("max_events", "is %d; give 0 (no count) or more", c.MaxEvents)
	}
	if c.MaxAge < time.Millisecond {
		add("max_age", "is %s; give a duration such as 1s: an event waits at most that long for its file", c.MaxAge)
	}
	if c.Linger < 0 {
		add("linger", "is %s; give 0 (off) or a duration such as 100ms", c.Linger)
	}
	if !modeRe.MatchString(c.Mode) {
		add("file_mode", "%q is not an octal mode such as 0644", c.Mode)
	}
	return errors.Join(errs...)
}

// pattern returns the file name pattern, its default filled in.
func (c *Config) pattern() string {
	if c.Name != "" {
		return c.Name
	}
	name := "{sink}-{time}-{seq}." + c.Format
	if c.Gzip {
		name += ".gz"
	}
	return name
}
