package runtime

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/tributary/tributary/core"
)

// Backoff is a capped exponential backoff with jitter.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = time.Second
	}
	if b.Max <= 0 {
		b.Max = time.Minute
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	return b
}

// Delay returns the wait before retry number attempt (0 for the first
// retry): Initial doubled per attempt, capped at Max, then jittered to
// between half and all of it so that many retrying connectors spread out.
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.withDefaults()
	d := b.Initial
	for i := 0; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// after returns the wait before the next attempt once an attempt that ran
// for ran ended with err: a core.RetryError's own delay, else Delay of
// *attempt, which it advances. An attempt that ran longer than twice the
// longest delay counts as a recovery, so the backoff starts over.
func (b Backoff) after(attempt *int, ran time.Duration, err error) time.Duration {
	if ran > 2*b.withDefaults().Max {
		*attempt = 0
	}
	d := b.Delay(*attempt)
	*attempt++
	var re *core.RetryError
	if errors.As(err, &re) && re.After > 0 {
		d = re.After
	}
	return d
}
