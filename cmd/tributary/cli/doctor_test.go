package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tributary/tributary/core/servicetest"
)

type doctorReport struct {
	OK       bool `json:"ok"`
	Findings []struct {
		Component, Check, Severity, Detail, Fix string
	} `json:"findings"`
}

// find returns the finding of component whose check starts with check.
func (r doctorReport) find(component, check string) (severity, detail, fix string, ok bool) {
	for _, f := range r.Findings {
		if f.Component == component && strings.HasPrefix(f.Check, check) {
			return f.Severity, f.Detail, f.Fix, true
		}
	}
	return "", "", "", false
}

func runDoctor(t *testing.T, file string) (int, doctorReport, string) {
	t.Helper()
	code, out, errOut := runCLI(t, "doctor", "-c", file, "--json")
	var r doctorReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("doctor --json printed %q (%s): %v", out, errOut, err)
	}
	return code, r, out
}

// TestDoctorLocal runs doctor on configurations that need no service:
// all well (exit 0), then a state directory that is a file and a sink
// endpoint nobody listens on (exit 1, each with its fix).
func TestDoctorLocal(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusMethodNotAllowed) }))
	defer up.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sink := func(url string) string {
		return fmt.Sprintf("sinks:\n  - name: out\n    type: http\n    events: [com.example.order.placed]\n    config: {url: %q}\n", url)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tt := range []struct {
		name, state, url, admin string
		code                    int
		bad                     []string // component/check prefixes that must be errors
	}{
		{name: "all well", state: filepath.Join(dir, "state"), url: up.URL, admin: "127.0.0.1:0", code: 0},
		{name: "admin port in use", state: filepath.Join(dir, "state"), url: up.URL, admin: busy.Addr().String(), code: 0},
		{name: "unwritable state and unreachable sink", state: notDir, url: downURL, admin: "127.0.0.1:0", code: 1,
			bad: []string{"state_dir/directory", "sink out/endpoint"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "tributary.yaml")
			cfg := fmt.Sprintf(sidecarConfig, tt.state, tt.admin, "127.0.0.1:0") + sink(tt.url)
			if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			code, r, out := runDoctor(t, file)
			if code != tt.code || r.OK != (tt.code == 0) {
				t.Fatalf("exit %d ok %v, want %d:\n%s", code, r.OK, tt.code, out)
			}
			for _, b := range tt.bad {
				comp, check, _ := strings.Cut(b, "/")
				sev, _, fix, ok := r.find(comp, check)
				if !ok || sev != "error" || fix == "" {
					t.Errorf("%s: %q %q found %v, want an error with a fix:\n%s", b, sev, fix, ok, out)
				}
			}
			want := "ok"
			if tt.admin != "127.0.0.1:0" {
				want = "warning"
			}
			if sev, _, fix, ok := r.find("admin", "listen on "+tt.admin); !ok || sev != want || (want == "warning" && !strings.Contains(fix, "admin.address")) {
				t.Errorf("the admin listener check: %q %q (found %v), want %s\n%s", sev, fix, ok, want, out)
			}
			if sev, _, _, ok := r.find("sink out", "endpoint"); tt.code == 0 && (!ok || sev != "ok") {
				t.Errorf("the reachable endpoint: %q %v\n%s", sev, ok, out)
			}
		})
	}
	code, _, errOut := runCLI(t, "doctor", "-c", filepath.Join(dir, "nope.yaml"))
	if code == 0 || !strings.Contains(errOut, "nope.yaml") {
		t.Errorf("a missing file: exit %d: %s", code, errOut)
	}
}

// TestDoctorServices runs doctor against the real PostgreSQL, MariaDB
// and Kafka: a publication that lacks a captured table and a missing slot
// under setup: verify are errors with the SQL that fixes them, MariaDB's
// binlog settings pass, and a checkpoint topic that is not compacted is
// an error naming cleanup.policy=compact.
func TestDoctorServices(t *testing.T) {
	pgURL, myDSN, brokers := servicetest.Postgres(t), servicetest.MySQL(t), servicetest.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := time.Now().UnixNano() % 1_000_000_000
	pub, table, other := fmt.Sprintf("doctor_pub_%d", n), fmt.Sprintf("doctor_t_%d", n), fmt.Sprintf("doctor_u_%d", n)
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range []string{
		"CREATE TABLE " + table + " (id int PRIMARY KEY)",
		"CREATE TABLE " + other + " (id int PRIMARY KEY)",
		"CREATE PUBLICATION " + pub + " FOR TABLE " + table,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		for _, q := range []string{"DROP PUBLICATION " + pub, "DROP TABLE " + table, "DROP TABLE " + other} {
			_, _ = conn.Exec(context.Background(), q)
		}
	})
	cpTopic := fmt.Sprintf("doctor.checkpoints.%d", n)
	servicetest.KafkaTopic(t, cpTopic, nil)

	dir := t.TempDir()
	file := filepath.Join(dir, "tributary.yaml")
	cfg := fmt.Sprintf(`version: 1
state_dir: %s
stream:
  type: kafka
  topics: {mode: per_type, prefix: "doctor.%d."}
  config: {brokers: [%q], checkpoint_topic: %q}
catalog:
  - {type: com.example.order.placed, version: "1", schema: {type: object}}
connectors:
  - name: pg
    type: postgres_cdc
    config: {url: %q, tables: [public.%s, public.%s], publication: %s, slot: doctor_slot_%d, setup: verify}
    emit: [{name: p, type: com.example.order.placed, subject: key.id, data: {id: key.id}}]
  - name: my
    type: mysql_cdc
    config: {dsn: %q}
    emit: [{name: p, type: com.example.order.placed, subject: key.id, data: {id: key.id}}]
`, filepath.Join(dir, "state"), n, brokers[0], cpTopic, pgURL, table, other, pub, n, myDSN)
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	code, r, out := runDoctor(t, file)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, tt := range []struct {
		name, component, check, severity, fix string
	}{
		{name: "wal_level", component: "connector pg", check: "wal_level", severity: "ok"},
		{name: "replication role", component: "connector pg", check: "role may replicate", severity: "ok"},
		{name: "publication lacks a table", component: "connector pg", check: "publication", severity: "error", fix: "ALTER PUBLICATION " + pub + " ADD TABLE public." + other},
		{name: "slot missing under verify", component: "connector pg", check: "slot", severity: "error", fix: "pg_create_logical_replication_slot('doctor_slot_"},
		{name: "binlog format", component: "connector my", check: "binlog_format", severity: "ok"},
		{name: "row image", component: "connector my", check: "binlog_row_image", severity: "ok"},
		{name: "grants", component: "connector my", check: "replication grants", severity: "ok"},
		{name: "checkpoint topic not compacted", component: "stream", check: "topic " + cpTopic, severity: "error", fix: "cleanup.policy=compact"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sev, detail, fix, ok := r.find(tt.component, tt.check)
			if !ok || sev != tt.severity || !strings.Contains(fix, tt.fix) {
				t.Errorf("%s %s: %q %q fix %q (found %v), want %s with a fix containing %q", tt.component, tt.check, sev, detail, fix, ok, tt.severity, tt.fix)
			}
		})
	}
}

// TestDoctorRESTCredentials calls a rest_poll connector's endpoint with
// its bearer token: the right token passes, a refused one is an error
// naming the auth settings.
func TestDoctorRESTCredentials(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`[]`))
	}))
	defer api.Close()
	for _, tt := range []struct {
		name, token, severity string
		code                  int
	}{
		{name: "accepted", token: "good", severity: "ok", code: 0},
		{name: "refused", token: "bad", severity: "error", code: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "tributary.yaml")
			cfg := fmt.Sprintf(`version: 1
state_dir: %s
stream: {type: embedded}
connectors:
  - name: api
    type: rest_poll
    config:
      url: "%s/orders?since={{.Cursor}}"
      key: [id]
      cursor: {field: updated_at, type: timestamp}
      auth: {type: bearer, token: %s}
    emit: [{name: p, type: com.example.order.placed, subject: after.id, data: {id: after.id}}]
`, filepath.Join(dir, "state"), api.URL, tt.token)
			if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			code, r, out := runDoctor(t, file)
			sev, _, fix, ok := r.find("connector api", "endpoint")
			if code != tt.code || !ok || sev != tt.severity || (sev == "error" && !strings.Contains(fix, "connectors.api.config.auth")) {
				t.Errorf("exit %d, endpoint %q fix %q (found %v):\n%s", code, sev, fix, ok, out)
			}
			if strings.Contains(out, tt.token+"\"") && tt.token == "bad" {
				t.Errorf("the report shows the token:\n%s", out)
			}
		})
	}
}
