package cli_test

import (
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
	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/core"
)

const searchConfig = `
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
sinks:
%s`

// writeSearchConfig writes a configuration with the given sinks section
// (YAML list items) and returns its path and state directory.
func writeSearchConfig(t *testing.T, sinks string) (file, stateDir string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	file = filepath.Join(dir, "tributary.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, searchConfig, stateDir, sinks), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, stateDir
}

// logEvents writes evs to the log of the audit sink name, where the
// runtime keeps it: in <state_dir>/sinks/<name>.
func logEvents(t *testing.T, stateDir, name string, evs ...*core.Event) {
	t.Helper()
	s := audit.New()
	if err := s.Configure(core.NewConfig(name, nil)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Open(ctx, core.Env{Name: name, StateDir: filepath.Join(stateDir, "sinks", name)}); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	ds := make([]core.Delivery, len(evs))
	for i, e := range evs {
		ds[i] = core.Delivery{Event: e}
	}
	for _, r := range s.Write(ctx, ds) {
		if r.Status != core.StatusDelivered {
			t.Fatalf("log events: %s: %v", r.Status, r.Err)
		}
	}
}

func orderEvent(id, typ, subject string, at time.Time) *core.Event {
	return &core.Event{
		ID: id, Source: "/tributary/shop", SpecVersion: core.SpecVersion, Type: typ, Subject: subject,
		Time: at, DataContentType: "application/json", Data: json.RawMessage(`{"order_id":"` + subject + `"}`),
		PartitionKey: subject,
	}
}

// TestEventsSearch: each filter of `events search` selects the events it
// names, in time order, as CloudEvents JSON lines or as a table.
func TestEventsSearch(t *testing.T) {
	const placed, shipped = "com.example.order.placed", "com.example.order.shipped"
	file, state := writeSearchConfig(t, "  - {name: audit_log, type: audit}\n")
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	logEvents(t, state, "audit_log",
		orderEvent("e3", placed, "A-2", t0.Add(2*time.Minute)),
		orderEvent("e1", placed, "A-1", t0),
		orderEvent("e2", shipped, "A-1", t0.Add(time.Minute)),
	)
	tests := []struct {
		name    string
		args    []string
		want    []string
		warning string // on stderr
	}{
		{name: "every event in time order", want: []string{"e1", "e2", "e3"}},
		{name: "one type", args: []string{"--type", placed}, want: []string{"e1", "e3"}},
		{name: "two types and a subject", args: []string{"--type", placed, "--type", shipped, "--subject", "A-1"}, want: []string{"e1", "e2"}},
		{name: "since a duration back", args: []string{"--since", "59m30s"}, want: []string{"e2", "e3"}},
		{name: "until a time", args: []string{"--until", t0.Add(90 * time.Second).Format(time.RFC3339)}, want: []string{"e1", "e2"}},
		{name: "since and until", args: []string{"--since", t0.Add(time.Minute).Format(time.RFC3339), "--until", t0.Add(2 * time.Minute).Format(time.RFC3339)}, want: []string{"e2"}},
		{name: "id", args: []string{"--id", "e3"}, want: []string{"e3"}},
		{name: "limit", args: []string{"--limit", "2"}, want: []string{"e1", "e2"}, warning: "the first 2 matching events; more match"},
		{name: "limit 0 is every match", args: []string{"--limit", "0"}, want: []string{"e1", "e2", "e3"}},
		{name: "a misspelt type", args: []string{"--type", "com.example.order.plced"}, want: []string{}, warning: `did you mean "com.example.order.placed"?`},
		{name: "the sink named", args: []string{"--sink", "audit_log", "--subject", "A-2"}, want: []string{"e3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"events", "search", "-c", file, "--json"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, errOut)
			}
			if got := printedIDs(t, out); !slices.Equal(got, tc.want) {
				t.Errorf("printed %v, want %v", got, tc.want)
			}
			if tc.warning != "" && !strings.Contains(errOut, tc.warning) {
				t.Errorf("stderr %q does not say %q", errOut, tc.warning)
			}
		})
	}

	t.Run("CloudEvents as logged", func(t *testing.T) {
		_, out, _ := runCLI(t, "events", "search", "-c", file, "--json", "--id", "e2")
		var got core.Event
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if want := orderEvent("e2", shipped, "A-1", t0.Add(time.Minute)); !got.Time.Equal(want.Time) || got.Source != want.Source ||
			got.PartitionKey != want.PartitionKey || string(got.Data) != string(want.Data) || got.SpecVersion != core.SpecVersion {
			t.Errorf("printed %s, want the event as logged: %+v", out, want)
		}
	})

	t.Run("table", func(t *testing.T) {
		code, out, errOut := runCLI(t, "events", "search", "-c", file, "--subject", "A-1")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		want := [][]string{
			{"TIME", "TYPE", "SUBJECT", "ID"},
			{t0.Format("2006-01-02T15:04:05.000Z07:00"), placed, "A-1", "e1"},
			{t0.Add(time.Minute).Format("2006-01-02T15:04:05.000Z07:00"), shipped, "A-1", "e2"},
		}
		if len(lines) != len(want) {
			t.Fatalf("table:\n%s", out)
		}
		for i, l := range lines {
			if got := strings.Fields(l); !slices.Equal(got, want[i]) {
				t.Errorf("line %d = %q, want %q", i, got, want[i])
			}
		}
	})
}

// TestEventsSearchRefuses: a search that cannot run says why, with the
// exit code of an invalid invocation, or 1 when the log is missing.
func TestEventsSearchRefuses(t *testing.T) {
	one, oneState := writeSearchConfig(t, "  - {name: audit_log, type: audit}\n  - {name: partner, type: http, config: {url: \"https://partner.example/hooks\"}}\n")
	logEvents(t, oneState, "audit_log", orderEvent("e1", "com.example.order.placed", "A-1", time.Now()))
	none, _ := writeSearchConfig(t, "  - {name: partner, type: http, config: {url: \"https://partner.example/hooks\"}}\n")
	two, _ := writeSearchConfig(t, "  - {name: audit_a, type: audit}\n  - {name: audit_b, type: audit}\n")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{name: "no audit sink", args: []string{"-c", none}, code: cli.ExitInvalid, want: "has no audit sink"},
		{name: "several audit sinks", args: []string{"-c", two}, code: cli.ExitInvalid, want: "several audit sinks (audit_a, audit_b): choose one with --sink"},
		{name: "an unknown sink", args: []string{"-c", one, "--sink", "audit"}, code: cli.ExitInvalid, want: `--sink "audit": ` + one + " has no such sink; its audit sinks: audit_log"},
		{name: "a sink of another type", args: []string{"-c", one, "--sink", "partner"}, code: cli.ExitInvalid, want: "a sink of type http, not audit"},
		{name: "since neither a time nor a duration", args: []string{"-c", one, "--since", "yesterday"}, code: cli.ExitInvalid, want: `--since "yesterday": neither a duration`},
		{name: "until before since", args: []string{"-c", one, "--since", "1h", "--until", "2h"}, code: cli.ExitInvalid, want: "is not after --since"},
		{name: "a negative limit", args: []string{"-c", one, "--limit", "-1"}, code: cli.ExitInvalid, want: "--limit -1"},
		{name: "a log never written", args: []string{"-c", two, "--sink", "audit_b"}, code: cli.ExitError, want: filepath.Join("sinks", "audit_b", "audit.db") + ": the audit sink creates it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"events", "search"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q does not say %q", errOut, tc.want)
			}
		})
	}
}

// TestAuditSinkLogsEveryEventOnce: the sidecar's audit sink logs every
// event of the stream, an event published twice once, and `events search`
// finds them in the log while the sidecar runs.
func TestAuditSinkLogsEveryEventOnce(t *testing.T) {
	const placed, shipped = "com.example.order.placed", "com.example.order.shipped"
	admin := freeAddr(t)
	file, _ := writeSearchConfig(t, "  - {name: audit_log, type: audit}\nadmin: {address: "+admin+"}\n")
	ids := []string{"p1", "s1", "p2", "p1", "s2", "s1"}
	publishEvents(t, file, ids, []string{placed, shipped, placed, placed, shipped, shipped})
	sc := startRunCommand(t, "-c", file)
	waitReadyz(t, admin, sc.done)
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, errOut := runCLI(t, "events", "search", "-c", file, "--json", "--limit", "0")
		if code == 0 {
			got = printedIDs(t, out)
			slices.Sort(got)
			if len(got) >= 4 {
				break
			}
		} else if !strings.Contains(errOut, "no audit log at") && !strings.Contains(errOut, "has no table") {
			t.Fatalf("search: exit %d\n%s", code, errOut)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit log holds %v after 30s, want p1, p2, s1, s2\n%s", got, sc.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Whatever was left in flight has had the time to be logged twice.
	time.Sleep(500 * time.Millisecond)
	_, out, _ := runCLI(t, "events", "search", "-c", file, "--json", "--limit", "0")
	got = printedIDs(t, out)
	slices.Sort(got)
	if want := []string{"p1", "p2", "s1", "s2"}; !slices.Equal(got, want) {
		t.Errorf("the audit log holds %v, want each event once: %v", got, want)
	}
}
