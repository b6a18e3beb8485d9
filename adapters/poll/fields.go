package poll

import (
	"context"
	"time"
)

// ScheduleConfig is the scheduling part of a polling connector's YAML
// configuration. Connectors embed it inline, so that every polling
// connector spells these keys the same way.
type ScheduleConfig struct {
	Schedule   string        `yaml:"schedule" default:"@every 1m" example:"0 */5 * * * *" doc:"When to poll: a cron expression (six fields with seconds first, or five), a descriptor such as @hourly, or @every 30s. A run never overlaps the previous one."`
	TimeZone   string        `yaml:"time_zone" default:"UTC" example:"Europe/Paris" doc:"IANA time zone the cron expression is evaluated in (a CRON_TZ= prefix in schedule wins)."`
	Jitter     time.Duration `yaml:"jitter" default:"0s" doc:"Random delay below this added to each run's start, to spread many connectors on one schedule; run times stay the scheduled ones."`
	CatchUp    string        `yaml:"catch_up" default:"one" enum:"one,all" doc:"After downtime: one runs once for all missed times; all runs once per missed time, oldest first, each with its own run time."`
	MaxCatchUp int           `yaml:"max_catch_up" default:"100" doc:"Most missed runs catch_up: all makes up for; older ones are dropped."`
}

// Apply copies the schedule into cfg.
func (c ScheduleConfig) Apply(cfg *Config) {
	cfg.Schedule, cfg.TimeZone, cfg.Jitter = c.Schedule, c.TimeZone, c.Jitter
	cfg.CatchUp, cfg.MaxCatchUp = c.CatchUp, c.MaxCatchUp
}

// Validate reports every problem of the schedule keys at once.
func (c ScheduleConfig) Validate() error {
	pc := Config{Mode: ModeEach, Fetcher: FetcherFunc(func(context.Context, Request, func([]Record) error) error { return nil })}
	c.Apply(&pc)
	return pc.Validate()
}
