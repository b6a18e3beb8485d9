package embedded

import (
	"errors"
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

// defaultFile is the database file in the state directory when path is
// empty.
const defaultFile = "stream.db"

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

// Config is the embedded stream's typed configuration. Each key is declared
// once, by the tags of its field (see core.FieldsOf): they give the
// validation, `tributary connectors`, the config schema and the defaults
// that ParseConfig decodes with.
type Config struct {
	// Path is the database file; empty means stream.db in Env.StateDir.
	Path string `yaml:"path" default:"" example:"/var/lib/tributary/stream.db" doc:"Database file of the stream. Empty means stream.db in the stream's state directory."`
	// Retention is how long messages are kept; 0 keeps them forever.
	Retention time.Duration `yaml:"retention" default:"168h" example:"720h" doc:"How long messages are kept before they are pruned, such as 168h. 0 keeps them forever."`
	// Sync says when a write counts as durable.
	Sync SyncMode `yaml:"sync" default:"full" enum:"full,normal" doc:"When a publish is acknowledged: full flushes to disk first (survives power loss); normal survives process crashes only, and is faster."`
	// Compression says how batches are stored. Files written with either
	// read back with either.
	Compression Compression `yaml:"compression" default:"s2" enum:"s2,none" doc:"How batches of messages are stored: s2 compresses them; none stores them as they are."`
}

// ParseConfig decodes cfg into a Config, absent keys taking their declared
// defaults, and validates it. Every problem is reported at once, each as a
// *core.FieldError: Validate runs even when a key does not decode (that
// key then holds its zero value).
func ParseConfig(cfg core.Config) (Config, error) {
	var c Config
	err := cfg.Decode(&c)
	return c, errors.Join(err, c.Validate())
}

// Validate checks what the tags cannot say (a path the driver can open, a
// retention that is not negative) and the enums, whose values it reads in
// any case. It does no I/O and reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	c.Path = strings.TrimSpace(c.Path)
	if strings.ContainsAny(c.Path, "?#") {
		errs = append(errs, core.FieldErrorf("path", "%q contains ? or #, which the database driver cannot open; rename the file", c.Path))
	}
	if c.Path != "" && strings.HasSuffix(c.Path, string(filepath.Separator)) {
		errs = append(errs, core.FieldErrorf("path", "%q is a directory; name the database file, such as %s", c.Path, filepath.Join(c.Path, defaultFile)))
	}
	if c.Retention < 0 {
		errs = append(errs, core.FieldErrorf("retention", "%s is negative; use a positive duration, or 0 to keep messages forever", c.Retention))
	}
	errs = append(errs, checkChoice("sync", &c.Sync, SyncFull, SyncNormal))
	errs = append(errs, checkChoice("compression", &c.Compression, CompressionS2, CompressionNone))
	return errors.Join(errs...)
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

// checkChoice lower-cases *v and checks that it is one of choices.
func checkChoice[T ~string](field string, v *T, choices ...T) error {
	raw := *v
	*v = T(strings.ToLower(strings.TrimSpace(string(raw))))
	if slices.Contains(choices, *v) {
		return nil
	}
	names := make([]string, len(choices))
	for i, c := range choices {
		names[i] = strconv.Quote(string(c))
	}
	return core.FieldErrorf(field, "unknown value %q; use %s", raw, strings.Join(names, " or "))
}
