package config_test

import (
	"strings"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	tests := []struct {
		name  string
		limit string // the memory section's limit; "" leaves the section out
		want  int64
		err   string // part of the error, when the file is invalid
	}{
		{name: "left out", want: 0},
		{name: "mebibytes", limit: "64MiB", want: 64 << 20},
		{name: "gibibytes", limit: "1GiB", want: 1 << 30},
		{name: "kibibytes", limit: "65536KiB", want: 64 << 20},
		{name: "bytes", limit: "50000000", want: 50000000},
		{name: "bytes with unit", limit: "50000000B", want: 50000000},
		{name: "off", limit: "off", want: -1},
		{name: "decimal unit", limit: "64MB", err: `"64MB" is not a memory limit`},
		{name: "zero", limit: "0MiB", err: `"0MiB" is not a memory limit`},
		{name: "negative", limit: "-1", err: `"-1" is not a memory limit`},
		{name: "overflow", limit: "9000000TiB", err: `"9000000TiB" is not a memory limit`},
		{name: "words", limit: "lots", err: "such as 64MiB or 1GiB, or off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := validYAML
			if tt.limit != "" {
				doc = edit(t, doc, "shutdown:\n", "memory: {limit: "+tt.limit+"}\nshutdown:\n")
			}
			cfg, err := parse(t, doc)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), "memory.limit") || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("memory.limit %s: error %v, want one naming memory.limit and saying %q", tt.limit, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Memory.Limit != tt.want {
				t.Fatalf("memory.limit %q: Limit = %d, want %d", tt.limit, cfg.Memory.Limit, tt.want)
			}
		})
	}
}

func TestReleaseStartupCode(t *testing.T) {
	tests := []struct {
		name    string
		section string // the memory section; "" leaves it out
		want    bool
		err     string
	}{
		{name: "left out", want: true},
		{name: "on", section: "memory: {release_startup_code: true}", want: true},
		{name: "off", section: "memory: {release_startup_code: false}", want: false},
		{name: "with a limit", section: "memory: {limit: 48MiB}", want: true},
		{name: "not a boolean", section: "memory: {release_startup_code: sometimes}", err: "memory.release_startup_code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := validYAML
			if tt.section != "" {
				doc = edit(t, doc, "shutdown:\n", tt.section+"\nshutdown:\n")
			}
			cfg, err := parse(t, doc)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("%s: error %v, want one naming %s", tt.section, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Memory.ReleaseStartupCode != tt.want {
				t.Fatalf("%s: ReleaseStartupCode = %v, want %v", tt.section, cfg.Memory.ReleaseStartupCode, tt.want)
			}
		})
	}
}
