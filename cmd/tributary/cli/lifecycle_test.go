package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/cmd/tributary/cli"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/lifecycle"
)

// writeLifecycleConfig writes lifecycleE2EConfig (with doc edited by
// replace, old/new pairs) into a temporary folder and returns its file.
func writeLifecycleConfig(t *testing.T, replace ...string) string {
	t.Helper()
	dir := t.TempDir()
	doc := fmt.Sprintf(lifecycleE2EConfig, filepath.Join(dir, "state"), "127.0.0.1:0", "127.0.0.1:0", "stream: {type: embedded}", "1s")
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(doc, replace[i]) {
			t.Fatalf("the configuration holds no %q", replace[i])
		}
		doc = strings.Replace(doc, replace[i], replace[i+1], 1)
	}
	file := filepath.Join(dir, "tributary.yaml")
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestCatalogGraph(t *testing.T) {
	file := writeLifecycleConfig(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"dot", []string{"catalog", "graph", "-c", file}, 0, `"accepted" -> "billed" [label="com.example.order.billed"];`},
		{"mermaid of one entity", []string{"catalog", "graph", "-c", file, "--entity", "order", "--format", "mermaid"}, 0, "billed --> shipped: com.example.order.shipped"},
		{"unknown entity", []string{"catalog", "graph", "-c", file, "--entity", "ordr"}, 2, `entity "ordr" is not declared`},
		{"unknown format", []string{"catalog", "graph", "-c", file, "--format", "png"}, 2, `--format "png": use dot or mermaid`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("exit %d, want %d; output lacks %q:\n%s%s", code, tt.code, tt.want, out, errOut)
			}
		})
	}
}

func TestValidateReportsEntityProblemsWithTheirLines(t *testing.T) {
	file := writeLifecycleConfig(t,
		"com.example.order.shipped: {from: [billed]", "com.example.order.shiped: {from: [biled]",
		"      billed: {within: 3s}", "      billed: {within: 3s}\n      lost: {}")
	code, out, errOut := runCLI(t, "validate", "-c", file)
	got := out + errOut
	if code != 2 {
		t.Fatalf("validate: exit %d, want 2\n%s", code, got)
	}
	for _, want := range []string{
		`tributary.yaml:26:7: entities.order.transitions.com.example.order.shiped: event type "com.example.order.shiped" is not in the catalog (did you mean "com.example.order.shipped"?)`,
		`tributary.yaml:26:7: entities.order.transitions.com.example.order.shiped.from:`, `state "biled" is not declared in the states of order (did you mean "billed"?)`,
		`tributary.yaml:21:7: entities.order.states.lost:`, `state lost of order is unreachable`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("validate output lacks %q:\n%s", want, got)
		}
	}
}

func TestLifecyclesRebuildRemovesTheStore(t *testing.T) {
	file := writeLifecycleConfig(t)
	store := filepath.Join(filepath.Dir(file), "state", "lifecycle", "lifecycle.db")
	if err := os.MkdirAll(filepath.Dir(store), 0o755); err != nil {
		t.Fatal(err)
	}
	snapshot := filepath.Join(filepath.Dir(store), lifecycle.SnapshotFile)
	for _, f := range []string{store, store + "-wal", snapshot} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := runCLI(t, "lifecycles", "rebuild", "-c", file)
	if code != 0 || !strings.Contains(out, "removed") {
		t.Fatalf("rebuild: exit %d\n%s%s", code, out, errOut)
	}
	for _, f := range []string{store, store + "-wal", snapshot} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s still exists (%v)", f, err)
		}
	}
}

func TestEntitiesAPIRefusesBadQueries(t *testing.T) {
	file := writeLifecycleConfig(t)
	sc, err := cli.Build(core.DefaultRegistry, file, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	h := sc.AdminHandler()
	tests := []struct {
		name, path string
		code       int
		want       string
	}{
		{"unknown entity", "/v1/entities/invoice/I-1", http.StatusNotFound, `\"invoice\": entity is not declared`},
		{"bad older_than", "/v1/entities/order?older_than=soon", http.StatusBadRequest, `older_than \"soon\" is not a duration`},
		{"unknown state", "/v1/entities/order?state=paid", http.StatusBadRequest, `state \"paid\" is not a state of order: use one of accepted, billed, shipped`},
		{"tracker not running", "/v1/entities/order/A-1", http.StatusServiceUnavailable, "not running yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.want) {
				t.Errorf("GET %s: %d %s, want %d holding %s", tt.path, rec.Code, rec.Body, tt.code, tt.want)
			}
		})
	}
}

// TestTraceAsksTheRunningSidecar: with a sidecar answering on the admin
// address, trace prints what it answers (there is no store to read).
func TestTraceAsksTheRunningSidecar(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/entities/order/A-1" {
			http.Error(w, `{"error":"no such instance"}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(lifecycle.Instance{Entity: "order", ID: "A-1", State: "billed", EnteredAt: time.Now(),
			Timeline: []lifecycle.Step{{EventID: "e1", Type: "com.example.order.billed", Source: "/tributary/billing", Time: time.Now(), Verdict: "ok"}}})
	}))
	defer srv.Close()
	file := writeLifecycleConfig(t, "admin: {address: 127.0.0.1:0}", "admin: {address: "+strings.TrimPrefix(srv.URL, "http://")+"}")
	code, out, errOut := runCLI(t, "trace", "order", "A-1", "-c", file)
	if code != 0 || !strings.Contains(out, "order A-1: billed since") || !strings.Contains(out, "/tributary/billing") {
		t.Errorf("trace: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "trace", "order", "B-9", "-c", file)
	if code != 1 || !strings.Contains(errOut, "no event of it has reached the lifecycle tracker yet") {
		t.Errorf("trace of an order the sidecar does not know: exit %d\n%s", code, errOut)
	}
}

func TestTraceWithoutStoreSaysWhy(t *testing.T) {
	file := writeLifecycleConfig(t)
	code, _, errOut := runCLI(t, "trace", "order", "A-1", "-c", file)
	if code != 1 || !strings.Contains(errOut, "the sidecar creates it when it runs with entities declared") {
		t.Errorf("trace without a store: exit %d\n%s", code, errOut)
	}
	code, _, errOut = runCLI(t, "trace", "invoice", "I-1", "-c", file)
	if code != 2 || !strings.Contains(errOut, `entity "invoice" is not declared`) {
		t.Errorf("trace of an unknown entity: exit %d\n%s", code, errOut)
	}
}
