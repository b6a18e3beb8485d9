package postgres_test

import (
	"testing"

	"github.com/tributary/tributary/config"
	connector "github.com/tributary/tributary/connectors/postgres"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
)

// TestDefaultMaxInFlight: the sidecar's configuration gives a postgres_cdc
// entry without max_in_flight the connector's bounded default, 1,000
// rather than the runtime's 10,000, and a value written in the entry
// wins, lower or higher.
func TestDefaultMaxInFlight(t *testing.T) {
	tests := []struct {
		name string
		set  string
		want int
	}{
		{name: "left out", want: 1000},
		{name: "lower", set: "\n    max_in_flight: 500", want: 500},
		{name: "higher", set: "\n    max_in_flight: 10000", want: 10000},
	}
	if connector.MaxInFlight != 1000 || connector.New().DefaultMaxInFlight() != connector.MaxInFlight {
		t.Fatalf("MaxInFlight = %d, DefaultMaxInFlight() = %d, want 1000", connector.MaxInFlight, connector.New().DefaultMaxInFlight())
	}
	reg := core.NewRegistry()
	reg.RegisterStream(memstream.Spec(memstream.New()))
	reg.RegisterSource(connector.Spec())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := `stream: {type: memory}
connectors:
  - name: legacy_orders
    type: postgres_cdc
    config: {url: "postgres://u:secretpw@db:5432/erp"}` + tt.set + "\n"
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
