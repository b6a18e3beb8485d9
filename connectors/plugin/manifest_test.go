package plugin_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tributary/tributary/config"
	connplugin "github.com/tributary/tributary/connectors/plugin"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
)

const ordersManifest = `fields:
  - {name: file, type: string, required: true, doc: The export to read.}
  - {name: poll_interval, type: duration, default: 5s, doc: Wait between two reads.}
`

const manifestYAML = `stream: {type: memory}
connectors:
  - name: mainframe_orders
    type: plugin
    config:
      command: bin/extract-plugin
      manifest: orders.manifest.yaml
      config:
        file: /data/exports/ORDERS.DAT
    emit:
      - {name: order_accepted, type: com.acme.order.accepted}
`

// parseWithManifest parses doc with the plugin connector registered, the
// orders manifest beside it.
func parseWithManifest(t *testing.T, doc string) (*config.Config, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "orders.manifest.yaml"), []byte(ordersManifest), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := core.NewRegistry()
	reg.RegisterSource(connplugin.Spec())
	reg.RegisterStream(memstream.Spec(memstream.New()))
	return config.Parse(filepath.Join(dir, "tributary.yaml"), []byte(doc), reg)
}

// TestManifestChecksThePluginConfig: the keys NestedConfig names are the
// plugin connector's declared "config" and "manifest", so the
// configuration loader checks the plugin's own block against the manifest
// and hands the connector that block with the manifest's defaults.
func TestManifestChecksThePluginConfig(t *testing.T) {
	block, manifest := connplugin.New().NestedConfig()
	declared := map[string]core.FieldType{}
	spec, _ := core.DefaultRegistry.Source(connplugin.Type)
	for _, f := range spec.Fields {
		declared[f.Name] = f.Type
	}
	if declared[block] != core.TypeAny || declared[manifest] != core.TypeString {
		t.Fatalf("NestedConfig names %q (declared %q) and %q (declared %q); want a declared any block and a declared string key", block, declared[block], manifest, declared[manifest])
	}

	cfg, err := parseWithManifest(t, manifestYAML)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := map[string]any{"file": "/data/exports/ORDERS.DAT", "poll_interval": "5s"}
	if got := cfg.Connectors[0].Config.Values["config"]; !reflect.DeepEqual(got, want) {
		t.Errorf("the plugin's config = %#v, want %#v, with the manifest's default", got, want)
	}
	if _, err := cfg.Connectors[0].NewSource(core.DefaultRegistry); err != nil {
		t.Errorf("configure the plugin connector from the loaded config: %v", err)
	}

	_, err = parseWithManifest(t, strings.Replace(manifestYAML, "        file: /data", "        fil: /data", 1))
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("a plugin config missing a required key of its manifest: error %v, want a *config.Error", err)
	}
	var got []string
	for _, p := range ce.Problems {
		got = append(got, p.Field)
	}
	wantFields := []string{"connectors[0].config.config.file", "connectors[0].config.config.fil"}
	if !reflect.DeepEqual(got, wantFields) {
		t.Errorf("problems at %v, want %v:\n%v", got, wantFields, err)
	}
}
