package mysql

import (
	"fmt"
	"testing"
	"time"
)

// syncerText is a DATETIME as go-mysql writes it without ParseTime.
func syncerText(t time.Time, frac int) string {
	s := fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second())
	if frac == 0 {
		return s
	}
	return fmt.Sprintf("%s.%06d", s, t.Nanosecond()/1000)[:len(s)+1+frac]
}

// TestDatetimeOf: a DATETIME or TIMESTAMP the syncer hands over as a time
// (ParseTime) decodes to what its text form decoded to.
func TestDatetimeOf(t *testing.T) {
	tests := []struct {
		name string
		at   time.Time
		frac int
	}{
		{name: "whole seconds", at: time.Date(2024, 5, 1, 12, 30, 0, 0, time.UTC)},
		{name: "micros", at: time.Date(2024, 5, 1, 12, 30, 0, 123456000, time.UTC), frac: 6},
		{name: "millis", at: time.Date(2024, 2, 29, 23, 59, 59, 500000000, time.UTC), frac: 3},
		{name: "trailing zeros kept", at: time.Date(1999, 12, 31, 0, 0, 1, 100000000, time.UTC), frac: 4},
		{name: "one digit", at: time.Date(2038, 1, 19, 3, 14, 8, 900000000, time.UTC), frac: 1},
		{name: "first of 1970", at: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), frac: 2},
		{name: "last of 9999", at: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), frac: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDatetime(t, tt.at, tt.frac)
		})
	}
}

// FuzzDatetimeOf checks the time path of DATETIME and TIMESTAMP decoding
// against the text path it spares.
func FuzzDatetimeOf(f *testing.F) {
	f.Add(int64(1714566600), int64(123456), 6)
	f.Add(int64(0), int64(0), 0)
	f.Add(int64(253402300799), int64(999999), 3)
	f.Fuzz(func(t *testing.T, sec, usec int64, frac int) {
		if sec < 0 || sec > 253402300799 || usec < 0 || usec > 999999 || frac < 0 || frac > 6 {
			t.Skip("outside DATETIME's range from 1970")
		}
		// The server stores frac digits: the rest are zero.
		scale := int64(1)
		for range 6 - frac {
			scale *= 10
		}
		checkDatetime(t, time.Unix(sec, usec/scale*scale*1000).UTC(), frac)
	})
}

func checkDatetime(t *testing.T, at time.Time, frac int) {
	t.Helper()
	text := syncerText(at, frac)
	for _, typ := range []string{"datetime", "timestamp"} {
		c := &column{Name: "at", Type: typ, Length: frac}
		want, err := decodeBinlog(c, text, nil)
		if err != nil {
			t.Fatalf("%s %q: %v", typ, text, err)
		}
		// The syncer builds DATETIMEs in UTC, TIMESTAMPs in the local
		// zone.
		v := at
		if typ == "timestamp" {
			v = at.In(time.FixedZone("east", 5*3600+1800))
		}
		got, err := decodeBinlog(c, v, &arena{})
		if err != nil {
			t.Fatalf("%s %v: %v", typ, at, err)
		}
		if got != want {
			t.Errorf("%s %v (%d digits) = %#v, want %#v as from %q", typ, at, frac, got, want, text)
		}
	}
}
