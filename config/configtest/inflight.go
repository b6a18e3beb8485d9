package configtest

import (
	"testing"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
)

// MaxInFlight checks that an entry of spec's type (its config given as a
// YAML flow mapping, such as `{dsn: "..."}`) without max_in_flight gets
// want, the bound the type declares (config.InFlightDefaulter), and that a
// value written in the entry wins, lower or higher.
func MaxInFlight(t *testing.T, spec core.SourceSpec, configFlow string, want int) {
	t.Helper()
	if d, ok := spec.New().(config.InFlightDefaulter); !ok || d.DefaultMaxInFlight() != want {
		t.Fatalf("%s does not declare max_in_flight %d (config.InFlightDefaulter)", spec.Type, want)
	}
	reg := core.NewRegistry()
	reg.RegisterStream(memstream.Spec(memstream.New()))
	reg.RegisterSource(spec)
	for _, tt := range []struct {
		name string
		set  string
		want int
	}{
		{name: "left out", want: want},
		{name: "lower", set: "\n    max_in_flight: 7", want: 7},
		{name: "higher", set: "\n    max_in_flight: 20000", want: 20000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := "stream: {type: memory}\nconnectors:\n  - name: legacy\n    type: " + spec.Type + "\n    config: " + configFlow + tt.set + "\n"
			cfg, err := config.ParseWith("inflight.yaml", []byte(doc), reg, config.Options{})
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := cfg.Connectors[0].MaxInFlight; got != tt.want {
				t.Errorf("max_in_flight = %d, want %d", got, tt.want)
			}
		})
	}
}
