package cli_test

import (
	dbsql "database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/tributary/tributary/core"
)

// sqlPollSidecar writes a sidecar configuration with a sql_poll connector
// named crm on a SQLite table customers (cursor mode on id), polling every
// 200ms, and returns it with the database and the admin address.
func sqlPollSidecar(t *testing.T, extraConnectors string) (cfgFile string, db *dbsql.DB, admin string) {
	t.Helper()
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "crm.db")
	dsn := "file:" + dbFile + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"
	db, err := dbsql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE customers (id integer primary key, name text)"); err != nil {
		t.Fatal(err)
	}
	admin = freeAddr(t)
	cfgFile = filepath.Join(dir, "tributary.yaml")
	cfg := fmt.Sprintf(`version: 1
state_dir: %s
log: {level: info}
admin: {address: %s}
shutdown: {timeout: 10s}
stream: {type: embedded}
connectors:
  - name: crm
    type: sql_poll
    config: {driver: sqlite, dsn: %q, table: customers, key: [id], cursor: {column: id, type: integer}, schedule: "@every 200ms"}
    emit:
      - {name: seen, type: com.example.customer.seen, subject: string(after.id), data: after}
%s`, filepath.Join(dir, "state"), admin, dsn, extraConnectors)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgFile, db, admin
}

func insertCustomers(t *testing.T, db *dbsql.DB, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if _, err := db.Exec("INSERT INTO customers VALUES (?, ?)", i, fmt.Sprint("name-", i)); err != nil {
			t.Fatal(err)
		}
	}
}

type connectorState struct {
	State         string `json:"state"`
	EventsEmitted int    `json:"events_emitted"`
	Checkpoint    string `json:"checkpoint"`
}

func connectorOf(t *testing.T, admin, name string) connectorState {
	t.Helper()
	var c connectorState
	getJSON(t, "http://"+admin+"/v1/connectors/"+name, &c)
	return c
}

// TestConnectorPauseResumeAndCheckpoint runs the sidecar on a sql_poll
// connector: paused from the admin API, it stops reading (new rows are
// not emitted, the state is paused, the log names who paused it);
// resumed, it emits them. Then its checkpoint is set forward while it
// runs: the answer and the log carry the old one, and the connector
// resumes from the new position, skipping the rows before it.
func TestConnectorPauseResumeAndCheckpoint(t *testing.T) {
	cfgFile, db, admin := sqlPollSidecar(t, "")
	insertCustomers(t, db, 1, 3)
	p := startSidecar(t, cfgFile)
	eventually(t, p, 20*time.Second, "ready", func() (bool, string) {
		code, body := readyz(admin)
		return code == http.StatusOK, body
	})
	emitted := func(n int) func() (bool, string) {
		return func() (bool, string) {
			c := connectorOf(t, admin, "crm")
			return c.EventsEmitted == n && c.State == "running", fmt.Sprintf("%+v", c)
		}
	}
	eventually(t, p, 20*time.Second, "3 rows emitted", emitted(3))
	eventually(t, p, 5*time.Second, "the checkpoint after 3 rows", func() (bool, string) {
		c := connectorOf(t, admin, "crm")
		return c.Checkpoint != "", fmt.Sprintf("%+v", c)
	})
	var cp3 struct {
		Checkpoint struct {
			Position json.RawMessage `json:"position"`
		} `json:"checkpoint"`
	}
	if code := getJSON(t, "http://"+admin+"/v1/connectors/crm/checkpoint", &cp3); code != 200 || len(cp3.Checkpoint.Position) == 0 {
		t.Fatalf("GET checkpoint: %d %+v", code, cp3)
	}

	var a struct{ Status, Error string }
	if code := adminDo(t, "POST", "http://"+admin+"/v1/connectors/crm/pause", "", &a); code != 200 || a.Status != "paused" {
		t.Fatalf("pause answered %d %+v", code, a)
	}
	if c := connectorOf(t, admin, "crm"); c.State != "paused" {
		t.Fatalf("after the pause: %+v", c)
	}
	insertCustomers(t, db, 4, 5)
	time.Sleep(time.Second) // five polls' worth
	if c := connectorOf(t, admin, "crm"); c.EventsEmitted != 3 || c.State != "paused" {
		t.Fatalf("the paused connector moved: %+v", c)
	}
	if !strings.Contains(p.logs.String(), "connector paused on request") || !strings.Contains(p.logs.String(), "by=127.0.0.1:") {
		t.Errorf("the log does not say who paused the connector:\n%s", p.logs)
	}
	if code := adminDo(t, "POST", "http://"+admin+"/v1/connectors/crm/resume", "", &a); code != 200 {
		t.Fatalf("resume answered %d %+v", code, a)
	}
	eventually(t, p, 20*time.Second, "rows 4 and 5 emitted after the resume", emitted(5))
	eventually(t, p, 5*time.Second, "the checkpoint after 5 rows", func() (bool, string) {
		var cp struct {
			Checkpoint struct {
				Position json.RawMessage `json:"position"`
			} `json:"checkpoint"`
		}
		getJSON(t, "http://"+admin+"/v1/connectors/crm/checkpoint", &cp)
		return string(cp.Checkpoint.Position) != string(cp3.Checkpoint.Position), string(cp.Checkpoint.Position)
	})

	// Forward past rows 6 and 7 (not written yet), while the connector
	// runs.
	var set struct {
		Checkpoint  struct{ Position core.Position }  `json:"checkpoint"`
		Old         *struct{ Position core.Position } `json:"old"`
		PausedForIt bool                              `json:"paused_for_it"`
		Error       string                            `json:"error"`
	}
	to7 := core.Position{Version: 1, Data: []byte(`{"c":7,"k":{"id":7}}`)}
	body, _ := json.Marshal(map[string]any{"position": to7})
	if code := adminDo(t, "PUT", "http://"+admin+"/v1/connectors/crm/checkpoint", string(body), &set); code != 200 {
		t.Fatalf("PUT checkpoint of the running connector answered %d %+v", code, set)
	}
	if !set.PausedForIt || set.Old == nil || !strings.HasPrefix(string(set.Old.Position.Data), `{"c":5,`) || string(set.Checkpoint.Position.Data) != string(to7.Data) {
		t.Fatalf("PUT answered %+v, want paused_for_it, the old position (row 5) and the new one", set)
	}
	eventually(t, p, 10*time.Second, "running again after the checkpoint was set", emitted(5))
	insertCustomers(t, db, 6, 8)
	// A cursor position is inclusive (rows tied on the cursor are read
	// again, those already seen dropped): rows 7 and 8 are emitted, 6 is
	// behind the checkpoint set.
	eventually(t, p, 20*time.Second, "rows 7 and 8 emitted", emitted(7))
	time.Sleep(time.Second)
	if c := connectorOf(t, admin, "crm"); c.EventsEmitted != 7 || !strings.HasPrefix(c.Checkpoint, `v1:{"c":8,`) {
		t.Errorf("after rows 6 to 8 were written: %+v, want rows 7 and 8 emitted (6 is behind the checkpoint set)", c)
	}
	logs := p.logs.String()
	if !strings.Contains(logs, "connector checkpoint set") || !strings.Contains(logs, "old=") || !strings.Contains(logs, "by=127.0.0.1:") {
		t.Errorf("the log does not record the checkpoint change with the old one and who made it:\n%s", logs)
	}
	for _, tt := range []struct {
		name, method, path string
		want               int
	}{
		{name: "pause unknown", method: "POST", path: "/v1/connectors/nope/pause", want: 404},
		{name: "resume unknown", method: "POST", path: "/v1/connectors/nope/resume", want: 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code := adminDo(t, tt.method, "http://"+admin+tt.path, "", nil); code != tt.want {
				t.Errorf("answered %d, want %d", code, tt.want)
			}
		})
	}
}

// TestConnectorCheckpointRewind sets a running sql_poll connector's
// checkpoint back, from row 5 to row 2: the connector reads the rows after
// it again and the sink receives their events again with the ids they
// had (consumers drop them as duplicates, or take them as the re-read
// asked for); row 1, before the checkpoint, is not sent again.
func TestConnectorCheckpointRewind(t *testing.T) {
	rcv := newHookReceiver(t, nil)
	cfgFile, db, admin := sqlPollSidecar(t, fmt.Sprintf(`sinks:
  - name: out
    type: http
    events: [com.example.customer.*]
    retry: {schedule: [50ms]}
    config: {url: %q}
`, rcv.URL))
	insertCustomers(t, db, 1, 5)
	p := startSidecar(t, cfgFile)
	eventually(t, p, 20*time.Second, "5 rows delivered", func() (bool, string) {
		return len(rcv.hooks()) >= 5, fmt.Sprint(len(rcv.hooks()), " delivered")
	})
	eventually(t, p, 10*time.Second, "the checkpoint at row 5", func() (bool, string) {
		c := connectorOf(t, admin, "crm")
		return strings.HasPrefix(c.Checkpoint, `v1:{"c":5,`), fmt.Sprintf("%+v", c)
	})
	first := map[string]string{} // row id (the subject) → event id
	for _, h := range rcv.hooks() {
		first[h.Event.Subject] = h.Event.ID
	}
	if len(first) != 5 {
		t.Fatalf("first deliveries %v, want rows 1 to 5 once each", first)
	}

	back := core.Position{Version: 1, Data: []byte(`{"c":2,"k":{"id":2}}`)}
	body, _ := json.Marshal(map[string]any{"position": back})
	var set struct {
		Old         *struct{ Position core.Position } `json:"old"`
		PausedForIt bool                              `json:"paused_for_it"`
	}
	if code := adminDo(t, "PUT", "http://"+admin+"/v1/connectors/crm/checkpoint", string(body), &set); code != 200 {
		t.Fatalf("PUT checkpoint back answered %d %+v", code, set)
	}
	if !set.PausedForIt || set.Old == nil || !strings.HasPrefix(string(set.Old.Position.Data), `{"c":5,`) {
		t.Fatalf("PUT answered %+v, want paused_for_it and the old position (row 5)", set)
	}
	again := func() map[string][]string {
		out := map[string][]string{}
		for _, h := range rcv.hooks()[5:] {
			out[h.Event.Subject] = append(out[h.Event.Subject], h.Event.ID)
		}
		return out
	}
	eventually(t, p, 20*time.Second, "rows 3 to 5 delivered again", func() (bool, string) {
		a := again()
		return len(a["3"]) > 0 && len(a["4"]) > 0 && len(a["5"]) > 0, fmt.Sprint(a)
	})
	time.Sleep(time.Second) // five polls' worth: nothing more comes
	for row, ids := range again() {
		if row == "1" {
			t.Errorf("row 1, before the checkpoint, delivered again: %v", ids)
		}
		for _, id := range ids {
			if id != first[row] {
				t.Errorf("row %s delivered again as event %s, first as %s: want the same id", row, id, first[row])
			}
		}
		if len(ids) != 1 {
			t.Errorf("row %s delivered %d more times, want once", row, len(ids))
		}
	}
	if !strings.Contains(p.logs.String(), "poll watermark set back to the stored checkpoint") {
		t.Errorf("the log does not say the connector reads again from the checkpoint:\n%s", p.logs)
	}
}

// TestSinkOffsetsEndpoint: GET /v1/sinks/{name}/offsets names the sink's
// consumer group and topics with the offsets it committed, on the
// embedded stream and on Kafka: once the receiver has the events, every
// partition's offset is at its end with no lag (on Kafka, whose topics
// are new, the offsets add up to the events delivered); with the sink
// paused, two more events of the same orders show as a lag of two. An
// unknown sink is 404.
func TestSinkOffsetsEndpoint(t *testing.T) {
	forEachStream(t, func(t *testing.T, e *sinkE2E) {
		rcv := newHookReceiver(t, nil)
		name := e.name("out")
		file := e.write("", httpSink(name, rcv.URL, "50ms", ""))
		runInProcess(t, file, e.admin)
		postEvents(t, e.hook, "A/1", "B/1", "A/2")
		waitHooks(t, rcv, 3)
		url := "http://" + e.admin + "/v1/sinks/" + name + "/offsets"
		kafka := strings.Contains(e.stream, "type: kafka")
		wait := func(what string, ok func(offs sinkOffsetsE2E) bool) sinkOffsetsE2E {
			t.Helper()
			deadline := time.Now().Add(30 * time.Second)
			for {
				var offs sinkOffsetsE2E
				code := getJSON(t, url, &offs)
				if code != http.StatusOK {
					t.Fatalf("offsets answered %d %+v", code, offs)
				}
				if ok(offs) {
					return offs
				}
				if time.Now().After(deadline) {
					t.Fatalf("offsets %+v: want %s", offs, what)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		offs := wait("every partition at its end", func(offs sinkOffsetsE2E) bool {
			var sum int64
			for _, o := range offs.Offsets {
				if o.Lag != 0 || o.Offset != o.End {
					return false
				}
				sum += o.Offset
			}
			return len(offs.Offsets) > 0 && (!kafka || sum == 3)
		})
		if offs.Group != "tributary.sink."+name || len(offs.Topics) == 0 || offs.Sink != name {
			t.Errorf("offsets %+v: want the sink, its group and topics", offs)
		}
		for _, o := range offs.Offsets {
			if !slices.Contains(offs.Topics, o.Topic) {
				t.Errorf("offset %+v on a topic the sink does not read (%v)", o, offs.Topics)
			}
		}
		var a struct{ Status string }
		if code := adminDo(t, "POST", "http://"+e.admin+"/v1/sinks/"+name+"/pause", "", &a); code != 200 {
			t.Fatalf("pause answered %d %+v", code, a)
		}
		// Orders the sink read before: on Kafka their partitions are
		// those the group committed on (one it never did is left out).
		postEvents(t, e.hook, "A/3", "B/2")
		wait("a lag of 2", func(offs sinkOffsetsE2E) bool {
			var lag int64
			for _, o := range offs.Offsets {
				lag += o.Lag
			}
			return lag == 2
		})
		var none sinkOffsetsE2E
		if code := getJSON(t, "http://"+e.admin+"/v1/sinks/nope/offsets", &none); code != 404 {
			t.Errorf("offsets of an unknown sink answered %d", code)
		}
	})
}

// sinkOffsetsE2E is the answer of GET /v1/sinks/{name}/offsets.
type sinkOffsetsE2E struct {
	Sink    string   `json:"sink"`
	Group   string   `json:"group"`
	Topics  []string `json:"topics"`
	Error   string   `json:"error"`
	Offsets []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
		End       int64  `json:"end"`
		Lag       int64  `json:"lag"`
	} `json:"offsets"`
}

// TestSinkRestartEndpoint: POST /v1/sinks/{name}/restart restarts the
// sink's session, which goes on delivering from its committed offsets.
func TestSinkRestartEndpoint(t *testing.T) {
	e := newSinkE2E(t, "stream: {type: embedded}", "")
	rcv := newHookReceiver(t, nil)
	file := e.write("", httpSink("out", rcv.URL, "50ms", ""))
	runInProcess(t, file, e.admin)
	postEvents(t, e.hook, "A/1")
	waitHooks(t, rcv, 1)
	var a struct{ Status, Error string }
	if code := adminDo(t, "POST", "http://"+e.admin+"/v1/sinks/out/restart", "", &a); code != 200 || a.Status != "restarting" {
		t.Fatalf("restart answered %d %+v", code, a)
	}
	postEvents(t, e.hook, "B/1")
	waitHooks(t, rcv, 2)
	time.Sleep(300 * time.Millisecond)
	if hs := rcv.hooks(); len(hs) != 2 || hs[1].ID != eventID("B/1") {
		t.Errorf("after the restart the receiver got %v, want A/1 then B/1, once each", idsOf(hs))
	}
	if code := adminDo(t, "POST", "http://"+e.admin+"/v1/sinks/nope/restart", "", nil); code != 404 {
		t.Errorf("restart of an unknown sink answered %d", code)
	}
}
