package poll

import (
	"time"

	"github.com/tributary/tributary/core"
)

// ScheduleConfig is the scheduling part of a polling connector's YAML
// configuration. Connectors embed it inline, so that every polling
// connector spells these keys the same way.
type ScheduleConfig struct {
	// Schedule is a cron expression or "@every <duration>".
	Schedule string `yaml:"schedule"`
	// TimeZone is the IANA time zone cron expressions are evaluated in.
	TimeZone string `yaml:"time_zone"`
	// Jitter delays each run by a random duration below it.
	Jitter time.Duration `yaml:"jitter"`
	// CatchUp is "one" or "all".
	CatchUp string `yaml:"catch_up"`
	// MaxCatchUp bounds the runs "all" makes up for.
	MaxCatchUp int `yaml:"max_catch_up"`
}

// DefaultSchedule is the schedule of a connector that sets none.
const DefaultSchedule = "@every 1m"

// ApplyDefaults fills unset fields.
func (c *ScheduleConfig) ApplyDefaults() {
	if c.Schedule == "" {
		c.Schedule = DefaultSchedule
	}
	if c.TimeZone == "" {
		c.TimeZone = "UTC"
	}
	if c.CatchUp == "" {
		c.CatchUp = CatchUpOne
	}
	if c.MaxCatchUp == 0 {
		c.MaxCatchUp = DefaultMaxCatchUp
	}
}

// Apply copies the schedule into cfg.
func (c ScheduleConfig) Apply(cfg *Config) {
	cfg.Schedule, cfg.TimeZone, cfg.Jitter = c.Schedule, c.TimeZone, c.Jitter
	cfg.CatchUp, cfg.MaxCatchUp = c.CatchUp, c.MaxCatchUp
}

// ScheduleFields declares the ScheduleConfig keys for a connector's
// registration.
func ScheduleFields() []core.Field {
	return []core.Field{
		{Name: "schedule", Type: core.TypeString, Default: DefaultSchedule, Example: "0 */5 * * * *",
			Doc: "When to poll: a cron expression (six fields with seconds first, or five), a descriptor such as @hourly, or @every 30s. A run never overlaps the previous one."},
		{Name: "time_zone", Type: core.TypeString, Default: "UTC", Example: "Europe/Paris",
			Doc: "IANA time zone the cron expression is evaluated in (a CRON_TZ= prefix in schedule wins)."},
		{Name: "jitter", Type: core.TypeDuration, Default: "0s",
			Doc: "Random delay below this added to each run's start, to spread many connectors on one schedule; run times stay the scheduled ones."},
		{Name: "catch_up", Type: core.TypeString, Default: CatchUpOne, Enum: []string{CatchUpOne, CatchUpAll},
			Doc: "After downtime: one runs once for all missed times; all runs once per missed time, oldest first, each with its own run time."},
		{Name: "max_catch_up", Type: core.TypeInt, Default: DefaultMaxCatchUp,
			Doc: "Most missed runs catch_up: all makes up for; older ones are dropped."},
	}
}
