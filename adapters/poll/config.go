package poll

import (
	"errors"
	"time"

	"github.com/tributary/tributary/core"
)

// Defaults of Config.
const (
	DefaultMaxCatchUp   = 100
	DefaultTombstoneTTL = 30 * 24 * time.Hour
	DefaultBuffer       = 4
)

// Config configures a Source.
type Config struct {
	// Schedule is a cron expression or "@every <duration>"; see
	// ParseSchedule.
	Schedule string
	// TimeZone is the IANA zone cron expressions are evaluated in; "" is
	// UTC.
	TimeZone string
	// Jitter delays each run by a random duration below it, spreading the
	// load of many connectors on one schedule. Run times stay the
	// scheduled ones.
	Jitter time.Duration
	// CatchUp is CatchUpOne (the default) or CatchUpAll.
	CatchUp string
	// MaxCatchUp bounds the runs CatchUpAll makes up for; older missed
	// times are dropped. Default DefaultMaxCatchUp.
	MaxCatchUp int
	// Mode is the change-detection mode.
	Mode Mode
	// Cursor is the watermark type in cursor mode.
	Cursor CursorKind
	// LookBack is how far below the watermark each cursor-mode run reads
	// again, for timestamp cursors.
	LookBack time.Duration
	// LookBackCount is the same for integer cursors: how many ids below
	// the watermark are read again.
	LookBackCount int64
	// TombstoneTTL is how long snapshot mode remembers a deleted key's
	// version, so that a key deleted and created again gets new positions.
	// Default DefaultTombstoneTTL.
	TombstoneTTL time.Duration
	// Fetcher reads the records.
	Fetcher Fetcher
	// Source is the SourceInfo of every change; records may override
	// fields.
	Source core.SourceInfo
	// Buffer is how many pages may wait for Read. Default DefaultBuffer.
	Buffer int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate reports every problem of c at once.
func (c *Config) Validate() error {
	var errs []error
	if _, err := ParseSchedule(c.Schedule, ""); err != nil {
		errs = append(errs, core.FieldErrorf("schedule", "%v", err))
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			errs = append(errs, core.FieldErrorf("time_zone", "%q is not a known time zone: use an IANA name such as Europe/Paris", c.TimeZone))
		}
	}
	switch c.CatchUp {
	case "", CatchUpOne, CatchUpAll:
	default:
		errs = append(errs, core.FieldErrorf("catch_up", "%q is not one of one, all", c.CatchUp))
	}
	if c.Jitter < 0 {
		errs = append(errs, core.FieldErrorf("jitter", "%s is negative", c.Jitter))
	}
	switch c.Mode {
	case ModeCursor:
		switch c.Cursor {
		case CursorTime, CursorInt, CursorString:
		default:
			errs = append(errs, core.FieldErrorf("cursor.type", "%q is not one of timestamp, integer, string", c.Cursor))
		}
		if c.LookBack < 0 || c.LookBackCount < 0 {
			errs = append(errs, core.FieldErrorf("cursor.look_back", "is negative"))
		}
	case ModeSnapshot, ModeEach:
	default:
		errs = append(errs, core.FieldErrorf("mode", "%q is not one of cursor, snapshot", c.Mode))
	}
	if c.Fetcher == nil {
		errs = append(errs, errors.New("poll source needs a Fetcher"))
	}
	return errors.Join(errs...)
}
