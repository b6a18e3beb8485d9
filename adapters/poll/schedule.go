package poll

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// The catch-up policies: what a Source does with the scheduled times it
// missed while it was down.
const (
	// CatchUpOne runs once for all missed times, with the latest as its run
	// time.
	CatchUpOne = "one"
	// CatchUpAll runs once per missed time, oldest first, each with its own
	// run time, up to MaxCatchUp runs.
	CatchUpAll = "all"
)

// Schedule says when runs happen.
type Schedule interface {
	// Next returns the first scheduled time strictly after t.
	Next(t time.Time) time.Time
}

// every is "@every <duration>", not rounded to whole seconds.
type every time.Duration

func (e every) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a schedule: "@every 30s", a cron expression of five
// fields (minute first) or six (second first), or a descriptor such as
// @hourly. A cron expression is evaluated in the time zone zone (an IANA
// name such as Europe/Paris; "" means UTC) unless it starts with CRON_TZ=.
func ParseSchedule(spec, zone string) (Schedule, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("schedule is empty: use a cron expression such as \"0 */5 * * * *\" or \"@every 1m\"")
	}
	if rest, ok := strings.CutPrefix(spec, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return nil, fmt.Errorf("schedule %q: %w", spec, err)
		}
		if d < time.Millisecond {
			return nil, fmt.Errorf("schedule %q: the interval must be at least 1ms", spec)
		}
		return every(d), nil
	}
	if zone == "" {
		zone = "UTC"
	}
	if _, err := time.LoadLocation(zone); err != nil {
		return nil, fmt.Errorf("time zone %q: %w (use an IANA name such as Europe/Paris)", zone, err)
	}
	if !strings.HasPrefix(spec, "CRON_TZ=") && !strings.HasPrefix(spec, "TZ=") {
		spec = "CRON_TZ=" + zone + " " + spec
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w (use six fields with seconds first, five fields, @hourly or @every 1m)", spec, err)
	}
	return s, nil
}

// missed returns the scheduled times in (last, now], oldest first, at most
// limit of them (the newest ones).
func missed(s Schedule, last, now time.Time, limit int) []time.Time {
	if e, ok := s.(every); ok {
		if n := int64(now.Sub(last) / time.Duration(e)); n > int64(limit)+1 {
			last = last.Add(time.Duration(n-int64(limit)-1) * time.Duration(e))
		}
	}
	var out []time.Time
	for t := s.Next(last); !t.After(now); t = s.Next(t) {
		out = append(out, t)
		if len(out) > limit {
			out = out[1:]
		}
		if t.IsZero() {
			break
		}
	}
	return out
}
