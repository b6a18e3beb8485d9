package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/cmd/tributary/cli"
	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
)

// runCLIWithin runs the command bounded by timeout. ended reports whether
// it returned by itself, before the timeout.
func runCLIWithin(t *testing.T, timeout time.Duration, args ...string) (code int, stdout, stderr string, ended bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errb bytes.Buffer
	code = cli.RunContext(ctx, core.DefaultRegistry, args, &out, &errb)
	return code, out.String(), errb.String(), ctx.Err() == nil
}

const tailConfig = `
version: 1
state_dir: %s
stream: {type: embedded}
catalog:
  - type: com.example.order.placed
    version: "1"
    schema: {type: object}
  - type: com.example.order.shipped
    version: "1"
    schema: {type: object}
`

// writeTailConfig writes a configuration declaring two event types on the
// embedded stream (per_type topics) and returns its path.
func writeTailConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "tributary.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, tailConfig, filepath.Join(dir, "state")), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// publishEvents stores one event per id on the stream file configures, the
// type of each given by types (same length).
func publishEvents(t *testing.T, file string, ids, types []string) {
	t.Helper()
	cfg, err := config.Load(file, core.DefaultRegistry)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := cfg.Stream.NewStream(core.DefaultRegistry)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := stream.Open(ctx, core.Env{Name: "test", StateDir: cfg.StateDir}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := stream.Close(ctx); err != nil {
			t.Errorf("close stream: %v", err)
		}
	}()
	for i, id := range ids {
		ev := &core.Event{
			ID: id, Source: "/tributary/test", SpecVersion: core.SpecVersion, Type: types[i],
			Time: time.Now().UTC(), DataContentType: "application/json",
			Data: []byte(`{"n":` + fmt.Sprint(i) + `}`), PartitionKey: "A-1",
		}
		if err := stream.Publisher().Publish(cfg.Stream.Topics.Topic(ev.Type), ev.ToMessage()); err != nil {
			t.Fatal(err)
		}
	}
}

// printedIDs returns the ids of the CloudEvents JSON lines out holds.
func printedIDs(t *testing.T, out string) []string {
	t.Helper()
	ids := []string{}
	for line := range strings.Lines(out) {
		var ev struct{ ID string }
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q is not a CloudEvent: %v", line, err)
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

// TestEventsTailNoFollowEndsAtWhatIsStored: with --no-follow, tail prints
// the events the embedded stream holds (from the beginning unless --since
// says otherwise) and exits by itself; --since takes a duration back from
// now as well as a time.
func TestEventsTailNoFollowEndsAtWhatIsStored(t *testing.T) {
	file := writeTailConfig(t)
	const placed, shipped = "com.example.order.placed", "com.example.order.shipped"
	publishEvents(t, file, []string{"p1", "s1", "p2"}, []string{placed, shipped, placed})

	tests := []struct {
		name    string
		args    []string
		want    []string
		ordered bool // the order printed is defined: one topic
	}{
		{name: "every type", args: nil, want: []string{"p1", "p2", "s1"}},
		{name: "one type in stream order", args: []string{"--type", placed}, want: []string{"p1", "p2"}, ordered: true},
		{name: "limit", args: []string{"--type", placed, "--limit", "1"}, want: []string{"p1"}, ordered: true},
		{name: "since a duration back", args: []string{"--since", "1h"}, want: []string{"p1", "p2", "s1"}},
		{name: "since a moment ago", args: []string{"--since", "1ns"}, want: []string{}},
		{name: "since a time long past", args: []string{"--since", "2000-01-02T00:00:00Z"}, want: []string{"p1", "p2", "s1"}},
		{name: "since a time to come", args: []string{"--since", time.Now().Add(time.Hour).Format(time.RFC3339)}, want: []string{}},
		{name: "from beginning", args: []string{"--from-beginning", "--type", shipped}, want: []string{"s1"}, ordered: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"events", "tail", "-c", file, "--no-follow"}, tc.args...)
			code, out, errOut, ended := runCLIWithin(t, 20*time.Second, args...)
			if !ended {
				t.Fatalf("tail %v did not exit by itself within 20s; printed:\n%s", tc.args, out)
			}
			if code != 0 {
				t.Fatalf("tail %v: exit %d\n%s", tc.args, code, errOut)
			}
			got := printedIDs(t, out)
			if !tc.ordered {
				slices.Sort(got)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("tail %v printed %v, want %v", tc.args, got, tc.want)
			}
		})
	}
}

// TestEventsTailRejectsWhatWouldNeverPrint: a --type the configuration does
// not declare, or a --since that is neither a duration nor a time, is an
// error at once (exit 2), not a silent wait.
func TestEventsTailRejectsWhatWouldNeverPrint(t *testing.T) {
	file := writeTailConfig(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{
			name: "type with a typo",
			args: []string{"--type", "com.example.order.plaecd"},
			want: []string{`--type "com.example.order.plaecd"`, `did you mean "com.example.order.placed"?`},
		},
		{
			name: "type nobody declares",
			args: []string{"--type", "com.example.order.placed", "--type", "com.acme.invoice.paid"},
			want: []string{`--type "com.acme.invoice.paid"`, "known types: com.example.order.placed, com.example.order.shipped"},
		},
		{
			name: "type with no-follow",
			args: []string{"--no-follow", "--type", "com.example.order.shiped"},
			want: []string{`did you mean "com.example.order.shipped"?`},
		},
		{
			name: "since neither duration nor time",
			args: []string{"--since", "yesterday"},
			want: []string{`--since "yesterday"`, "10m", "RFC 3339"},
		},
		{
			name: "since a negative duration",
			args: []string{"--since", "-5m"},
			want: []string{`--since "-5m"`, "positive duration"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"events", "tail", "-c", file}, tc.args...)
			code, _, errOut, ended := runCLIWithin(t, 10*time.Second, args...)
			if !ended {
				t.Fatalf("tail %v waited for 10s instead of failing", tc.args)
			}
			if code != cli.ExitInvalid {
				t.Fatalf("tail %v: exit %d, want %d\n%s", tc.args, code, cli.ExitInvalid, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("tail %v error lacks %q:\n%s", tc.args, w, errOut)
				}
			}
		})
	}
}
