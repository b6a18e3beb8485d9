package config_test

import (
	"testing"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
)

// boundedSource is a source whose type declares its own max_in_flight
// default, as the CDC connectors do.
type boundedSource struct{ core.SourceFunc }

func (*boundedSource) DefaultMaxInFlight() int { return 1500 }

var _ config.InFlightDefaulter = (*boundedSource)(nil)

// TestTypeMaxInFlight: a connector entry without max_in_flight gets the
// default its type declares, or the file format's where the type declares
// none; a max_in_flight written in the entry wins either way.
func TestTypeMaxInFlight(t *testing.T) {
	tests := []struct {
		name  string
		entry string
		want  int
	}{
		{name: "type default", entry: "type: bounded", want: 1500},
		{name: "type default for null", entry: "type: bounded\n    max_in_flight: null", want: 1500},
		{name: "explicit lower wins", entry: "type: bounded\n    max_in_flight: 500", want: 500},
		{name: "explicit higher wins", entry: "type: bounded\n    max_in_flight: 10000", want: 10000},
		{name: "no type default", entry: "type: plain", want: config.DefaultMaxInFlight},
		{name: "no type default, explicit", entry: "type: plain\n    max_in_flight: 300", want: 300},
	}
	reg := testRegistry()
	reg.RegisterSource(core.SourceSpec{Type: "bounded", Summary: "Reads a change log.", New: func() core.Source { return &boundedSource{} }})
	reg.RegisterSource(core.SourceSpec{Type: "plain", Summary: "Reads something.", New: func() core.Source { return core.SourceFunc(nil) }})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "connectors:\n  - name: a\n    " + tt.entry + "\n"
			cfg, err := config.ParseWith("inflight.yaml", []byte(doc), reg, config.Options{})
			if err != nil {
				t.Fatalf("parse:\n%s\n%v", doc, err)
			}
			if got := cfg.Connectors[0].MaxInFlight; got != tt.want {
				t.Errorf("max_in_flight = %d, want %d", got, tt.want)
			}
		})
	}
}
