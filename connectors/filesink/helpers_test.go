package filesink_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/filesink"
	"github.com/tributary/tributary/core"
)

// newSink configures a files sink named drop with values.
func newSink(t testing.TB, values map[string]any) *filesink.Sink {
	t.Helper()
	s := filesink.New()
	if err := s.Configure(core.NewConfig("drop", values)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return s
}

func open(t testing.TB, s *filesink.Sink) {
	t.Helper()
	if err := s.Open(context.Background(), core.Env{Name: "drop"}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
}

func write(t testing.TB, s core.Sink, ds ...core.Delivery) []core.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return s.Write(ctx, ds)
}

var seq atomic.Int64

func event(key string, data map[string]any) core.Delivery {
	b, _ := json.Marshal(data)
	n := seq.Add(1)
	return core.Delivery{Event: &core.Event{
		ID: fmt.Sprintf("ev-%d", n), Source: "/test", SpecVersion: core.SpecVersion,
		Type: "com.example.order.accepted", Subject: key, PartitionKey: key,
		Time: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC), DataContentType: "application/json", Data: b,
	}}
}

// visible lists the files of dir a reader sees (no dot names), by name.
func visible(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// hidden lists the dot files of dir.
func hidden(t testing.TB, dir string) []string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// lines returns the lines of the file at path, gunzipped when its name
// ends in .gz.
func lines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r = gz
	}
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

// ids reads the event ids of the JSON Lines files of dir, in file and
// line order.
func ids(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	for _, name := range visible(t, dir) {
		for _, l := range lines(t, filepath.Join(dir, name)) {
			var ev struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("%s: line %q: %v", name, l, err)
			}
			out = append(out, ev.ID)
		}
	}
	return out
}

func statuses(rs []core.Result) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Status.String())
	}
	return strings.Join(out, " ")
}
