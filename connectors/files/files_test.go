package files_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/config/configtest"

	connector "github.com/tributary/tributary/connectors/files"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
)

func TestSampleConfigures(t *testing.T) {
	configtest.Sample(t, "sample.yaml", connector.Spec())
}

func TestRegistered(t *testing.T) {
	spec, ok := core.DefaultRegistry.Source(connector.Type)
	if !ok {
		t.Fatal("files_poll is not registered")
	}
	if _, ok := spec.New().(*connector.Source); !ok {
		t.Errorf("New() returns %T", spec.New())
	}
	core.NewRegistry().RegisterSource(connector.Spec())
}

func TestValidate(t *testing.T) {
	valid := func() map[string]any {
		return map[string]any{"dir": "/in", "format": "fixed", "fixed": map[string]any{"fields": []any{
			map[string]any{"name": "a", "start": 1, "length": 3},
		}}}
	}
	tests := []struct {
		name   string
		change func(v map[string]any)
		path   string
	}{
		{name: "valid", change: func(map[string]any) {}},
		{name: "no dir", change: func(v map[string]any) { delete(v, "dir") }, path: "dir"},
		{name: "bad format", change: func(v map[string]any) { v["format"] = "xml" }, path: "format"},
		{name: "no layout", change: func(v map[string]any) { delete(v, "fixed") }, path: "fixed.fields"},
		{name: "start from zero", change: func(v map[string]any) {
			v["fixed"].(map[string]any)["fields"].([]any)[0].(map[string]any)["start"] = 0
		}, path: "fixed.fields[0].start"},
		{name: "bad field type", change: func(v map[string]any) {
			v["fixed"].(map[string]any)["fields"].([]any)[0].(map[string]any)["type"] = "date"
		}, path: "fixed.fields[0].type"},
		{name: "csv without columns", change: func(v map[string]any) {
			v["format"] = "csv"
			v["csv"] = map[string]any{"header": false}
		}, path: "csv.columns"},
		{name: "two-character delimiter", change: func(v map[string]any) {
			v["format"] = "csv"
			v["csv"] = map[string]any{"delimiter": ";;"}
		}, path: "csv.delimiter"},
		{name: "done dir is dir", change: func(v map[string]any) { v["done_dir"] = "/in/" }, path: "done_dir"},
		{name: "bad after", change: func(v map[string]any) { v["after"] = "archive" }, path: "after"},
		{name: "bad pattern", change: func(v map[string]any) { v["pattern"] = "[" }, path: "pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := valid()
			tt.change(v)
			err := connector.New().Configure(core.NewConfig("drop", v))
			if tt.path == "" {
				if err != nil {
					t.Fatalf("Configure() = %v", err)
				}
				return
			}
			for _, e := range core.Flatten(err) {
				var fe *core.FieldError
				if errors.As(e, &fe) && fe.Path == tt.path {
					return
				}
			}
			t.Fatalf("Configure() = %v, want an error on %s", err, tt.path)
		})
	}
}

func newSource(t conformance.TB, values map[string]any) *connector.Source {
	t.Helper()
	if _, ok := values["schedule"]; !ok {
		values["schedule"] = "@every 10ms"
	}
	s := connector.New()
	if err := s.Configure(core.NewConfig("drop", values)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return s
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dst, string(b))
}

func write(t conformance.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// waitFor polls cond: the file moves happen on Ack, synchronously, so
// this only guards against a slow file system.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCSVQuoting(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/orders.csv", filepath.Join(dir, "orders-1.csv"))
	write(t, filepath.Join(dir, "orders-1.csv.done"), "")
	s := newSource(t, map[string]any{"dir": dir, "format": "csv", "ready": "marker", "key": []any{"order_id"}})
	open(t, s, testEnv(t), core.Position{})
	got := readN(t, s, 3)
	want := []string{
		`{"customer":"Smith, Ada","note":"said \"hi\"","order_id":"1001","total":"42.50"}`,
		`{"customer":"Bob","note":"two\nlines","order_id":"1002","total":"7.00"}`,
		`{"customer":"Ünïcode","note":"","order_id":"1003","total":"0.10"}`,
	}
	for i, ch := range got {
		if asJSON(ch.After) != want[i] {
			t.Errorf("record %d = %s, want %s", i, asJSON(ch.After), want[i])
		}
		if ch.Op != core.OpCreate || ch.Key["order_id"] != ch.After["order_id"] || ch.Meta["file"] != "orders-1.csv" {
			t.Errorf("record %d: op %s key %v meta %v", i, ch.Op, ch.Key, ch.Meta)
		}
	}
	if err := s.Ack(context.Background(), got[1].Position); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(dir, "orders-1.csv")) {
		t.Fatal("file moved before all its records were acknowledged")
	}
	if err := s.Ack(context.Background(), got[2].Position); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the file to move to done/", func() bool {
		return exists(filepath.Join(dir, "done", "orders-1.csv")) && exists(filepath.Join(dir, "done", "orders-1.csv.done")) && !exists(filepath.Join(dir, "orders-1.csv"))
	})
	// The same content dropped again is not read again.
	copyFile(t, "testdata/orders.csv", filepath.Join(dir, "orders-2.csv"))
	write(t, filepath.Join(dir, "orders-2.csv.done"), "")
	if extra := settle(t, s, 80*time.Millisecond); len(extra) > 0 {
		t.Fatalf("a file with a processed checksum was read again: %d records", len(extra))
	}
}

func TestFixedWidth(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/ledger.txt", filepath.Join(dir, "ledger.txt"))
	s := newSource(t, map[string]any{
		"dir": dir, "format": "fixed", "skip_lines": 1, "stable_for": "1ms", "after": "delete",
		"fixed": map[string]any{"fields": []any{
			map[string]any{"name": "account", "start": 1, "length": 6, "type": "int"},
			map[string]any{"name": "holder", "start": 7, "length": 20},
			map[string]any{"name": "amount", "start": 27, "length": 10, "type": "decimal"},
			map[string]any{"name": "side", "start": 37, "length": 1},
		}},
	})
	open(t, s, testEnv(t), core.Position{})
	got := readN(t, s, 3)
	want := []string{
		`{"account":17,"amount":1250.75,"holder":"ACME CORP","side":"C"}`,
		`{"account":18,"amount":99.00,"holder":"Björk AB","side":"D"}`,
		`{"account":19,"amount":null,"holder":"SHORT","side":""}`,
	}
	for i, ch := range got {
		if asJSON(ch.After) != want[i] {
			t.Errorf("record %d = %s, want %s", i, asJSON(ch.After), want[i])
		}
	}
	if err := s.Ack(context.Background(), got[2].Position); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the file to be deleted", func() bool { return !exists(filepath.Join(dir, "ledger.txt")) })
}

func TestJSONLinesWithBadLine(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/events.jsonl", filepath.Join(dir, "events.jsonl"))
	s := newSource(t, map[string]any{"dir": dir, "format": "jsonl", "stable_for": "1ms", "after": "keep"})
	open(t, s, testEnv(t), core.Position{})
	got := readN(t, s, 3)
	if asJSON(got[1].After) != `{"amount":12.5,"id":2,"status":"paid"}` {
		t.Errorf("record 2 = %s", asJSON(got[1].After))
	}
	if got[2].After != nil || got[2].Meta["parse_error"] == nil || got[2].Meta["raw"] != "not json" {
		t.Errorf("a bad line must become a change with meta.parse_error and meta.raw, for the rules to dead-letter: %+v", got[2])
	}
	if got[2].Meta["line"] != int64(3) {
		t.Errorf("bad line numbered %v, want 3 (blank lines do not count)", got[2].Meta["line"])
	}
}

func TestPartiallyWrittenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "part.jsonl")
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	fmt.Fprintln(fh, `{"id":1}`)
	fmt.Fprint(fh, `{"id":`)
	s := newSource(t, map[string]any{"dir": dir, "format": "jsonl", "stable_for": "300ms"})
	open(t, s, testEnv(t), core.Position{})
	// The writer keeps appending: the file never looks stable.
	for i := 2; i < 6; i++ {
		if got := settle(t, s, 40*time.Millisecond); len(got) > 0 {
			t.Fatalf("read %d records of a file still being written", len(got))
		}
		fmt.Fprintf(fh, "%d}\n{\"id\":", i)
	}
	fmt.Fprintln(fh, `6}`)
	fh.Close()
	got := readN(t, s, 6)
	if len(got) != 6 || got[5].After["id"].(json.Number) != "6" {
		t.Fatalf("read %d records, last %v", len(got), got[len(got)-1].After)
	}
}

func TestCrashAfterPublishBeforeMark(t *testing.T) {
	dir := t.TempDir()
	env := testEnv(t)
	copyFile(t, "testdata/events.jsonl", filepath.Join(dir, "a.jsonl"))
	values := func() map[string]any {
		return map[string]any{"dir": dir, "format": "jsonl", "stable_for": "1ms"}
	}
	s := newSource(t, values())
	open(t, s, env, core.Position{})
	first := readN(t, s, 3)
	// The events are published and the first is acknowledged; then the
	// process dies before the last acknowledgement (Close stands in).
	if err := s.Ack(context.Background(), first[0].Position); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(dir, "a.jsonl")) {
		t.Fatal("file moved before all its records were acknowledged")
	}
	s2 := newSource(t, values())
	open(t, s2, env, first[0].Position)
	again := readN(t, s2, 2)
	for i, ch := range again {
		if string(ch.Position.Data) != string(first[i+1].Position.Data) {
			t.Fatalf("record %d read again at %s, first at %s: event ids would differ", i+1, ch.Position, first[i+1].Position)
		}
	}
	if err := s2.Ack(context.Background(), again[1].Position); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the file to move", func() bool { return exists(filepath.Join(dir, "done", "a.jsonl")) })
	if extra := settle(t, s2, 60*time.Millisecond); len(extra) > 0 {
		t.Fatalf("read %d records after the file was finished", len(extra))
	}
}

// drops gives each conformance check its own directory.
type drops struct {
	mu   sync.Mutex
	dirs map[string]string
	n    map[string]int
	root string
}

func (d *drops) dir(t conformance.TB) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dirs == nil {
		d.dirs, d.n = map[string]string{}, map[string]int{}
	}
	p, ok := d.dirs[t.Name()]
	if !ok {
		p = filepath.Join(d.root, fmt.Sprint(len(d.dirs)))
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		d.dirs[t.Name()] = p
	}
	return p
}

// produce drops one file of k records, written aside and renamed in, with
// its marker.
func (d *drops) produce(t conformance.TB, k int) {
	dir := d.dir(t)
	d.mu.Lock()
	d.n[t.Name()]++
	seq := d.n[t.Name()]
	d.mu.Unlock()
	var b strings.Builder
	for i := range k {
		fmt.Fprintf(&b, "{\"file\":%d,\"rec\":%d}\n", seq, i)
	}
	name := fmt.Sprintf("drop-%04d.jsonl", seq)
	write(t, filepath.Join(dir, "."+name), b.String())
	if err := os.Rename(filepath.Join(dir, "."+name), filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, name+".ok"), "")
}

func TestConformance(t *testing.T) {
	d := &drops{root: t.TempDir()}
	conformance.Run(t, conformance.Harness{
		New: func(t conformance.TB) core.Source {
			return newSource(t, map[string]any{"dir": d.dir(t), "format": "jsonl", "ready": "marker", "marker_suffix": ".ok"})
		},
		Produce:      d.produce,
		Capabilities: conformance.Capabilities{Resume: true, Ordered: true},
	})
}

func testEnv(t testing.TB) core.Env { return conformance.TestEnv(t, "drop") }

var (
	open   = conformance.Open
	readN  = conformance.ReadN
	settle = conformance.Settle
)
