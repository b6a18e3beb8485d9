package postgres

import (
	"reflect"
	"testing"

	"github.com/tributary/tributary/core"
)

// TestLeftOutBlocksTakeTheirDefaults: a nested block (snapshot, heartbeat,
// outbox) left out of the configuration decodes as if it were written
// empty, with every key at its declared default, rather than at Go's zero
// values.
func TestLeftOutBlocksTakeTheirDefaults(t *testing.T) {
	base := map[string]any{"url": "postgres://u@db:5432/erp"}
	written := map[string]any{"url": base["url"]}
	var blocks int
	for _, f := range core.FieldsOf[Config]() {
		if f.Type == core.TypeObject {
			written[f.Name] = map[string]any{}
			blocks++
		}
	}
	if blocks == 0 {
		t.Fatal("postgres_cdc declares no nested block")
	}
	leftOut, err := decodeConfig(core.NewConfig("orders", base))
	if err != nil {
		t.Fatal(err)
	}
	empty, err := decodeConfig(core.NewConfig("orders", written))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(leftOut, empty) {
		t.Errorf("blocks left out decode as\n%+v\nwritten empty as\n%+v", leftOut, empty)
	}
	if err := leftOut.Validate(); err != nil {
		t.Errorf("a configuration of only url is invalid: %v", err)
	}
}
