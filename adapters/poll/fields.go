package poll

import (
	"context"
	"maps"
	"reflect"
	"time"

	"github.com/tributary/tributary/core"
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

// DecodeConfig decodes a polling connector's configuration c into v, a
// pointer to its typed Config (see core.FieldsOf), with every absent key at
// its declared default. A block (a key of type object, such as cursor or
// pagination) that is absent reads as an empty one, so that its keys take
// their declared defaults too: the polling connectors' blocks are plain
// structs, whose zero value would not be a valid configuration, and no
// block of theirs means something by its absence. Errors are those of
// core.Config.Decode.
func DecodeConfig(c core.Config, v any) error {
	fields := core.FieldsOfType(reflect.TypeOf(v))
	return core.NewConfig(c.Name, withBlocks(fields, c.Values)).Decode(v)
}

// withBlocks returns values with every absent (or null) object of fields,
// at any depth, set to an empty mapping. values is not modified.
func withBlocks(fields []core.Field, values map[string]any) map[string]any {
	out := maps.Clone(values)
	if out == nil {
		out = map[string]any{}
	}
	for _, f := range fields {
		if f.Type != core.TypeObject {
			continue
		}
		switch v := out[f.Name].(type) {
		case nil:
			out[f.Name] = withBlocks(f.Fields, nil)
		case map[string]any:
			out[f.Name] = withBlocks(f.Fields, v)
		}
	}
	return out
}
