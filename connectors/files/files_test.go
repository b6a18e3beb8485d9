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

	"go.yaml.in/yaml/v3"

	"github.com/tributary/tributary/config/configtest"

	connector "github.com/tributary/tributary/connectors/files"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/rules"
	"github.com/tributary/tributary/core/runtime"
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
		{name: "bad parse_errors", change: func(v map[string]any) { v["parse_errors"] = "ignore" }, path: "parse_errors"},
		{name: "quote as delimiter", change: func(v map[string]any) {
			v["format"] = "csv"
			v["csv"] = map[string]any{"delimiter": `"`}
		}, path: "csv.delimiter"},
		{name: "comment is the delimiter", change: func(v map[string]any) {
			v["format"] = "csv"
			v["csv"] = map[string]any{"delimiter": ";", "comment": ";"}
		}, path: "csv.comment"},
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
	if got[2].After != nil || got[2].Meta["parse_error"] == nil || got[2].Meta["raw"] != "not json" || string(got[2].Raw) != "not json" {
		t.Errorf("a bad line must become a change with its bytes and meta.parse_error: %+v", got[2])
	}
	if got[2].Invalid == "" {
		t.Errorf("a bad line is not marked for the dead-letter stream (parse_errors: dead_letter is the default): %+v", got[2])
	}
	if got[2].Meta["line"] != int64(4) || !strings.Contains(got[2].Meta["parse_error"].(string), "line 4:") {
		t.Errorf("bad line numbered %v (%v), want its physical line 4 in both", got[2].Meta["line"], got[2].Meta["parse_error"])
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

func TestParseErrorsFail(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "orders.csv"), "id,item\nS001,a\nS002,\"b\nS003,c\"d\n")
	s := newSource(t, map[string]any{"dir": dir, "format": "csv", "stable_for": "1ms", "parse_errors": "fail"})
	open(t, s, testEnv(t), core.Position{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []core.Change
	for {
		b, err := s.Read(ctx)
		if err == nil {
			got = append(got, b...)
			continue
		}
		if !errors.Is(err, core.ErrFatal) || !strings.Contains(err.Error(), "orders.csv") || !strings.Contains(err.Error(), "line 3, column 6") {
			t.Fatalf("Read() = %v, want a fatal error naming the file and line 3, column 6", err)
		}
		break
	}
	for _, ch := range got {
		if ch.Meta["parse_error"] != nil {
			t.Errorf("with parse_errors: fail a record that does not parse became a change: %+v", ch)
		}
	}
	if !exists(filepath.Join(dir, "orders.csv")) {
		t.Error("the file moved although it failed to parse")
	}
}

// TestSampleDeadLettersBrokenLine runs the sample's nightly_orders
// connector through the runtime on a file with a broken quote: the line
// reaches the dead-letter stream with its bytes and line number, and every
// other line becomes its event, in order.
func TestSampleDeadLettersBrokenLine(t *testing.T) {
	values, emit := sampleEntry(t, "nightly_orders")
	dir := t.TempDir()
	values["dir"], values["done_dir"] = dir, filepath.Join(dir, "done")
	values["stable_for"], values["schedule"] = "1ms", "@every 10ms"
	write(t, filepath.Join(dir, "orders-1.csv"), "order_id,customer,total\nS001,Ada,10.00\nS002,\"Bob,12.00\nS003,Cy,5.00\n")
	set, err := rules.Compile("nightly_orders", emit, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := connector.New()
	if err := src.Configure(core.NewConfig("nightly_orders", values)); err != nil {
		t.Fatal(err)
	}
	st := memstream.New()
	rt, err := runtime.New(runtime.Options{
		Stream:          st,
		Topics:          runtime.Topics{Mode: "single", Name: "events"},
		DeadLetterTopic: "deadletters",
		Connectors:      []runtime.Connector{{Name: "nightly_orders", Type: connector.Type, Source: src, Mapper: runtime.Rules(set)}},
		StateDir:        t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runtime: %v", err)
		}
	}()
	waitFor(t, "the file to be finished", func() bool { return exists(filepath.Join(dir, "done", "orders-1.csv")) })

	var ids []string
	for _, m := range st.Messages("events") {
		var d struct {
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal(m.Payload, &d); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.OrderID)
	}
	if strings.Join(ids, ",") != "S001,S003" {
		t.Errorf("events for orders %v, want S001,S003: the line after a broken quote is its own record", ids)
	}
	dead := st.Messages("deadletters")
	if len(dead) != 1 {
		t.Fatalf("%d dead-letter records, want 1", len(dead))
	}
	var dl struct {
		Error  string `json:"error"`
		Change struct {
			After   map[string]any `json:"after"`
			Meta    map[string]any `json:"meta"`
			Invalid string         `json:"invalid"`
			Raw64   []byte         `json:"raw_base64"`
		} `json:"change"`
	}
	if err := json.Unmarshal(dead[0].Payload, &dl); err != nil {
		t.Fatal(err)
	}
	c := dl.Change
	if string(c.Raw64) != `S002,"Bob,12.00` || c.Meta["line"] != float64(3) || c.After != nil ||
		!strings.Contains(c.Invalid, "line 3, column 6") || !strings.Contains(dl.Error, "line 3, column 6") {
		t.Errorf("dead letter %s: want the line's bytes, line 3, no after, and the parse error", dead[0].Payload)
	}
}

// sampleEntry returns the config values and rules of connector name in
// sample.yaml.
func sampleEntry(t *testing.T, name string) (map[string]any, []core.Rule) {
	t.Helper()
	data, err := os.ReadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Connectors []struct {
			Name   string         `yaml:"name"`
			Config map[string]any `yaml:"config"`
			Emit   []core.Rule    `yaml:"emit"`
		} `yaml:"connectors"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range doc.Connectors {
		if c.Name == name {
			return c.Config, c.Emit
		}
	}
	t.Fatalf("sample.yaml has no connector %q", name)
	return nil, nil
}
