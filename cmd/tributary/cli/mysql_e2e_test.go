package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/tributary/tributary/core/servicetest"
)

const mysqlE2EConfig = `
version: 1
state_dir: %s
log: {level: warn}
admin: {address: %s}
shutdown: {timeout: 10s}
stream: {type: embedded}
catalog:
  - type: com.example.row.created
    version: "1"
    schema:
      type: object
      required: [id]
      properties:
        id: {type: integer}
connectors:
  - name: legacy
    type: mysql_cdc
    config:
      dsn: "%s"
      tables: [%s.big]
      snapshot: {mode: never}
      heartbeat: {interval: 200ms}
    emit:
      - name: created
        when: op == "create"
        type: com.example.row.created
        subject: string(after.id)
        partition_key: string(after.id)
        data: {id: after.id}
`

// TestMySQLE2EKilledInsideLargeTransaction: the built sidecar streams a
// 50,000-row transaction from MariaDB into the embedded stream and is
// killed with SIGKILL while its events are being published. Restarted, it
// reads the transaction again from its start: every row ends on the
// stream, and a row published twice has the same event id both times.
func TestMySQLE2EKilledInsideLargeTransaction(t *testing.T) {
	const n = 50000
	dsn := servicetest.MySQL(t)
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	dbName := fmt.Sprintf("t_e2e_kill_%d", time.Now().UnixNano()%1e6)
	root, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, s := range []string{"CREATE DATABASE " + dbName, "CREATE TABLE " + dbName + ".big (id INT PRIMARY KEY, v VARCHAR(20))"} {
		if _, err := root.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	t.Cleanup(func() { _, _ = root.Exec("DROP DATABASE IF EXISTS " + dbName) })
	cfg.DBName = dbName
	dir := t.TempDir()
	admin := freeAddr(t)
	cfgFile := filepath.Join(dir, "tributary.yaml")
	if err := os.WriteFile(cfgFile, fmt.Appendf(nil, mysqlE2EConfig, filepath.Join(dir, "state"), admin, cfg.FormatDSN(), dbName), 0o644); err != nil {
		t.Fatal(err)
	}
	emitted := func() (uint64, string) {
		resp, err := http.Get("http://" + admin + "/v1/connectors/legacy")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var st struct {
			State         string `json:"state"`
			EventsEmitted uint64 `json:"events_emitted"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&st)
		return st.EventsEmitted, st.State
	}
	p := startSidecar(t, cfgFile)
	eventually(t, p, 30*time.Second, "the connector runs", func() (bool, string) {
		_, state := emitted()
		return state == "running", state
	})
	if _, err := root.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s.big SELECT seq, CONCAT('v', seq) FROM seq_1_to_%d", dbName, n)); err != nil {
		t.Fatal(err)
	}
	eventually(t, p, 60*time.Second, "events of the transaction are published", func() (bool, string) {
		got, state := emitted()
		return got > 0, fmt.Sprint(got, " ", state)
	})
	atKill, _ := emitted()
	kill9(t, p)
	if atKill >= n {
		t.Fatalf("all %d events were published before the kill; it has to come inside the transaction", n)
	}
	p2 := startSidecar(t, cfgFile)
	out, err := exec.CommandContext(ctx, tributaryBinary(t), "events", "tail", "-c", cfgFile, "--from-beginning", "--limit", fmt.Sprint(n)).Output()
	if err != nil {
		t.Fatalf("events tail: %v\n%s", err, p2.logs)
	}
	// Read what the stream holds: at least every row once, duplicates
	// with their first id.
	ids := map[string]string{}
	dups := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct{ ID, Subject string }
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event %s: %v", sc.Bytes(), err)
		}
		if prev, ok := ids[ev.Subject]; ok {
			dups++
			if prev != ev.ID {
				t.Fatalf("row %s published with ids %s and %s", ev.Subject, prev, ev.ID)
			}
		}
		ids[ev.Subject] = ev.ID
	}
	// The tail stops at n events; duplicates among them leave rows
	// unread, so read on until every row is there.
	if len(ids) < n {
		more, err := exec.CommandContext(ctx, tributaryBinary(t), "events", "tail", "-c", cfgFile, "--from-beginning", "--limit", fmt.Sprint(n+dups)).Output()
		if err != nil {
			t.Fatalf("events tail: %v", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(more))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev struct{ ID, Subject string }
			_ = json.Unmarshal(sc.Bytes(), &ev)
			if prev, ok := ids[ev.Subject]; ok && prev != ev.ID {
				t.Fatalf("row %s published with ids %s and %s", ev.Subject, prev, ev.ID)
			}
			ids[ev.Subject] = ev.ID
		}
	}
	if len(ids) != n {
		t.Fatalf("%d of %d rows on the stream", len(ids), n)
	}
	t.Logf("%d events published before the kill; %d published again after it, with the same ids", atKill, dups)
}
