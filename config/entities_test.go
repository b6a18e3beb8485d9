package config_test

import (
	"strings"
	"testing"
)

// entitiesYAML declares an order entity on the catalog of validYAML; its
// transitions start at line 48.
const entitiesYAML = validYAML + `entities:
  order:
    initial: accepted
    final: [accepted]
    states:
      accepted: {within: 1h}
    transitions:
      com.acme.order.accepted: {to: accepted}
`

func TestEntitiesLoad(t *testing.T) {
	cfg, err := parse(t, entitiesYAML)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Compiled.Lifecycle) != 1 || cfg.Compiled.Lifecycle[0].Name() != "order" {
		t.Fatalf("Compiled.Lifecycle = %v, want the order machine", cfg.Compiled.Lifecycle)
	}
}

func TestEntitiesProblems(t *testing.T) {
	tests := []struct {
		name, old, new string
		want           string
	}{
		{"type not in the catalog", "com.acme.order.accepted: {to", "com.acme.order.acepted: {to", `:49:7: entities.order.transitions.com.acme.order.acepted: event type "com.acme.order.acepted" is not in the catalog (did you mean "com.acme.order.accepted"?)`},
		{"unknown state", "{to: accepted}", "{to: acepted}", `entities.order.transitions.com.acme.order.accepted.to: state "acepted" is not declared in the states of order (did you mean "accepted"?)`},
		{"bad id expression", "{to: accepted}", "{to: accepted, id: 'event.nope +'}", "entities.order.transitions.com.acme.order.accepted.id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, edit(t, entitiesYAML, tt.old, tt.new))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant it to hold %q", err, tt.want)
			}
		})
	}
}
