package embedded

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
)

// SyncMode says when the stream considers a write durable.
type SyncMode string

// The sync modes.
const (
	// SyncFull flushes the write-ahead log to disk (fsync) before a publish
	// is acknowledged: an acked message survives a process crash and a power
	// loss.
	SyncFull SyncMode = "full"
	// SyncNormal acknowledges once the write-ahead log is written, and
	// flushes at checkpoints: an acked message survives a process crash but
	// the last transactions may be lost on a power loss or kernel crash.
	SyncNormal SyncMode = "normal"
)

// Defaults of the configuration fields.
const (
	DefaultRetention = 168 * time.Hour
	defaultFile      = "stream.db"
)

// fields declares the embedded stream's configuration.
func fields() []core.Field {
	return []core.Field{
		{
			Name:    "path",
			Type:    core.TypeString,
			Doc:     "Database file of the stream. Empty means stream.db in the stream's state directory.",
			Default: "",
			Example: "/var/lib/tributary/stream.db",
		},
		{
			Name:    "retention",
			Type:    core.TypeDuration,
			Doc:     "How long messages are kept before they are pruned, such as 168h. 0 keeps them forever.",
			Default: "168h",
			Example: "720h",
		},
		{
			Name:    "sync",
			Type:    core.TypeString,
			Doc:     "When a publish is acknowledged: full flushes to disk first (survives power loss); normal survives process crashes only, and is faster.",
			Default: string(SyncFull),
			Enum:    []string{string(SyncFull), string(SyncNormal)},
		},
		{
			Name:    "compression",
			Type:    core.TypeString,
			Doc:     "How batches of messages are stored: s2 compresses them (CloudEvents attributes repeat from one event to the next, so a batch usually shrinks several times, and so do the disk writes); none stores them as they are.",
			Default: string(CompressionS2),
			Enum:    []string{string(CompressionS2), string(CompressionNone)},
		},
	}
}

// Compression says how batches are stored.
type Compression string

// The compression modes.
const (
	// CompressionS2 stores each batch S2-compressed (github.com/klauspost/compress/s2)
	// when that makes it smaller.
	CompressionS2 Compression = "s2"
	// CompressionNone stores batches as they are.
	CompressionNone Compression = "none"
)

// Config is the embedded stream's typed configuration.
type Config struct {
	// Path is the database file; empty means stream.db in Env.StateDir.
	Path string
	// Retention is how long messages are kept; 0 keeps them forever.
	Retention time.Duration
	// Sync says when a write counts as durable.
	Sync SyncMode
	// Compression says how batches are stored. Files written with either
	// read back with either.
	Compression Compression
}

// rawConfig is the configuration as written in YAML, before parsing.
type rawConfig struct {
	Path        string `yaml:"path"`
	Retention   string `yaml:"retention"`
	Sync        string `yaml:"sync"`
	Compression string `yaml:"compression"`
}

// ParseConfig decodes and validates cfg, applying defaults for absent
// fields. Every problem is reported at once, each as a *core.FieldError.
func ParseConfig(cfg core.Config) (Config, error) {
	raw := rawConfig{Retention: DefaultRetention.String(), Sync: string(SyncFull), Compression: string(CompressionS2)}
	if err := cfg.Decode(&raw); err != nil {
		return Config{}, err
	}
	var errs []error
	c := Config{Path: strings.TrimSpace(raw.Path)}
	if strings.ContainsAny(c.Path, "?#") {
		errs = append(errs, core.FieldErrorf("path", "%q contains ? or #, which the database driver cannot open; rename the file", c.Path))
	}
	if c.Path != "" && strings.HasSuffix(c.Path, string(filepath.Separator)) {
		errs = append(errs, core.FieldErrorf("path", "%q is a directory; name the database file, such as %s", c.Path, filepath.Join(c.Path, defaultFile)))
	}
	ret, err := parseRetention(raw.Retention)
	if err != nil {
		errs = append(errs, &core.FieldError{Path: "retention", Err: err})
	}
	c.Retention = ret
	if c.Sync, err = parseChoice("sync", raw.Sync, SyncFull, SyncNormal); err != nil {
		errs = append(errs, err)
	}
	if c.Compression, err = parseChoice("compression", raw.Compression, CompressionS2, CompressionNone); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

func parseRetention(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write one such as 168h or 30m, or 0 to keep messages forever", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative; use a positive duration, or 0 to keep messages forever", s)
	}
	return d, nil
}

// file returns the database file to open, given the state directory.
func (c Config) file(stateDir string) (string, error) {
	if c.Path != "" {
		return c.Path, nil
	}
	if stateDir == "" {
		return "", core.FieldErrorf("path", "no path set and no state directory given; set path to a database file")
	}
	return filepath.Join(stateDir, defaultFile), nil
}

// pruneInterval is how often expired messages are deleted.
func (c Config) pruneInterval() time.Duration {
	iv := c.Retention / 4
	return min(max(iv, 10*time.Millisecond), time.Minute)
}

// parseChoice reads the value of field, one of choices in any case; empty
// means the first.
func parseChoice[T ~string](field, raw string, choices ...T) (T, error) {
	v := T(strings.ToLower(strings.TrimSpace(raw)))
	if v == "" {
		return choices[0], nil
	}
	if slices.Contains(choices, v) {
		return v, nil
	}
	names := make([]string, len(choices))
	for i, c := range choices {
		names[i] = strconv.Quote(string(c))
	}
	return choices[0], core.FieldErrorf(field, "unknown value %q; use %s", raw, strings.Join(names, " or "))
}
