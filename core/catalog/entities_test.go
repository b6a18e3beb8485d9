package catalog_test

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tributary/tributary/core/catalog"
)

const validEntities = `
order:
  initial: accepted
  final: [shipped]
  states:
    accepted: {}
    billed: {within: 2h}
    shipped: {}
  transitions:
    com.acme.order.accepted: {to: accepted}
    com.acme.order.billed: {from: [accepted], to: billed, id: event.data.order_id}
    com.acme.order.shipped: {from: [billed], to: shipped}
`

var entityTypes = []string{"com.acme.order.accepted", "com.acme.order.billed", "com.acme.order.shipped"}

func parseEntities(t *testing.T, src string) ([]catalog.Entity, []catalog.EntityProblem) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return catalog.ParseEntities(doc.Content[0], catalog.EntityOptions{Types: entityTypes, Suggest: closest})
}

func TestParseEntitiesValid(t *testing.T) {
	ents, probs := parseEntities(t, validEntities)
	if len(probs) > 0 {
		t.Fatalf("problems: %+v", probs)
	}
	if len(ents) != 1 {
		t.Fatalf("entities = %d, want 1", len(ents))
	}
	e := ents[0]
	if e.Name != "order" || e.ID != catalog.DefaultEntityID || e.Window != catalog.DefaultWindow || e.Initial != "accepted" {
		t.Errorf("entity = %+v", e)
	}
	if e.States[1].Within != 2*time.Hour {
		t.Errorf("billed within = %s, want 2h", e.States[1].Within)
	}
	if tr := e.Transitions[1]; tr.ID != "event.data.order_id" || tr.From[0] != "accepted" || tr.To != "billed" || tr.Line != 11 {
		t.Errorf("transition = %+v", tr)
	}
}

func TestParseEntitiesProblems(t *testing.T) {
	tests := []struct {
		name       string
		old, new   string
		wantLine   int
		wantPath   string
		wantSubstr string
	}{
		{"unknown event type", "com.acme.order.shipped: {from", "com.acme.order.shiped: {from", 12, "order.transitions.com.acme.order.shiped", `not in the catalog (did you mean "com.acme.order.shipped"?)`},
		{"unknown state in from", "from: [billed]", "from: [biled]", 12, "order.transitions.com.acme.order.shipped.from", `state "biled" is not declared in the states of order (did you mean "billed"?)`},
		{"unreachable state", "    shipped: {}\n  transitions", "    shipped: {}\n    lost: {}\n  transitions", 9, "order.states.lost", "unreachable"},
		{"state with no way out", "final: [shipped]", "final: []", 8, "order.states.shipped", "has no way out"},
		{"bad duration", "within: 2h", "within: soon", 7, "order.states.billed.within", "not a positive duration"},
		{"unknown key", "  initial: accepted", "  initial: accepted\n  finale: [x]", 4, "order.finale", `(did you mean "final"?)`},
		{"undeclared initial", "initial: accepted", "initial: acepted", 3, "order.initial", `(did you mean "accepted"?)`},
		{"start not to initial", "com.acme.order.accepted: {to: accepted}", "com.acme.order.accepted: {to: billed}", 10, "order.transitions.com.acme.order.accepted.from", "not the initial state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(validEntities, tt.old, tt.new, 1)
			if src == validEntities {
				t.Fatalf("case does not change the document")
			}
			_, probs := parseEntities(t, src)
			for _, p := range probs {
				if p.Path == tt.wantPath && p.Line == tt.wantLine && strings.Contains(p.Message, tt.wantSubstr) {
					return
				}
			}
			t.Errorf("no problem at line %d, %s containing %q; got %+v", tt.wantLine, tt.wantPath, tt.wantSubstr, probs)
		})
	}
}

// closest stands in for the configuration's suggestions: the candidate
// within two edits of w.
func closest(w string, cands []string) string {
	for _, c := range cands {
		if distance(w, c) <= 2 {
			return c
		}
	}
	return ""
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
