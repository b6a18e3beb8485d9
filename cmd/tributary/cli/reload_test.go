package cli_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

type reloadReport struct {
	Result   string `json:"result"`
	By       string `json:"by"`
	Problems []struct {
		Line    int    `json:"line"`
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"problems"`
	Connectors   struct{ Added, Removed, Changed []string } `json:"connectors"`
	NeedsRestart []string                                   `json:"needs_restart"`
}

type sidecarStatus struct {
	Connectors []struct {
		Name          string    `json:"name"`
		State         string    `json:"state"`
		Since         time.Time `json:"since"`
		EventsEmitted int       `json:"events_emitted"`
	} `json:"connectors"`
	LastReload *reloadReport `json:"last_reload"`
}

func statusOf(t *testing.T, admin string) sidecarStatus {
	t.Helper()
	var st sidecarStatus
	if code := getJSON(t, "http://"+admin+"/v1/connectors", &st); code != 200 {
		t.Fatalf("GET /v1/connectors: %d", code)
	}
	return st
}

func (s sidecarStatus) connector(name string) (state string, since time.Time, emitted int, ok bool) {
	for _, c := range s.Connectors {
		if c.Name == name {
			return c.State, c.Since, c.EventsEmitted, true
		}
	}
	return "", time.Time{}, 0, false
}

func rewrite(t *testing.T, file string, pairs ...string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("%s has no %q", file, pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReloadOnSIGHUP runs the built binary with two sql_poll connectors,
// changes one and adds a third in the file, and sends SIGHUP: only the
// changed one restarts (from its checkpoint), the new one emits, the
// untouched one keeps its session and counters, and the status's
// last_reload says what changed. Then an invalid file, on SIGHUP and on
// POST /v1/reload, changes nothing: the problems are reported (answer,
// log, last_reload) and the running connectors go on.
func TestReloadOnSIGHUP(t *testing.T) {
	cfgFile, db, admin := sqlPollSidecar(t, `  - name: erp
    type: sql_poll
    config: {driver: sqlite, dsn: "DSN", table: orders, key: [id], cursor: {column: id, type: integer}, schedule: "@every 200ms"}
    emit:
      - {name: seen, type: com.example.order.seen, subject: string(after.id), data: after}
`)
	b, _ := os.ReadFile(cfgFile)
	dsn := strings.SplitN(strings.SplitN(string(b), `dsn: "`, 2)[1], `"`, 2)[0]
	rewrite(t, cfgFile, `dsn: "DSN"`, fmt.Sprintf("dsn: %q", dsn))
	for _, q := range []string{
		"CREATE TABLE orders (id integer primary key, name text)",
		"CREATE TABLE invoices (id integer primary key, name text)",
		"INSERT INTO orders VALUES (1, 'o1'), (2, 'o2')",
		"INSERT INTO invoices VALUES (1, 'i1')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	insertCustomers(t, db, 1, 2)
	p := startSidecar(t, cfgFile)
	eventually(t, p, 20*time.Second, "both connectors emitted", func() (bool, string) {
		code, _ := readyz(admin)
		if code != 200 {
			return false, "not ready"
		}
		st := statusOf(t, admin)
		_, _, crm, _ := st.connector("crm")
		_, _, erp, _ := st.connector("erp")
		return crm == 2 && erp == 2, fmt.Sprintf("%+v", st)
	})
	_, crmSince, _, _ := statusOf(t, admin).connector("crm")
	_, erpSince, _, _ := statusOf(t, admin).connector("erp")

	rewrite(t, cfgFile, `table: orders, key: [id], cursor: {column: id, type: integer}, schedule: "@every 200ms"`,
		`table: orders, key: [id], cursor: {column: id, type: integer}, schedule: "@every 300ms"`)
	f, err := os.OpenFile(cfgFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, `  - name: billing
    type: sql_poll
    config: {driver: sqlite, dsn: %q, table: invoices, key: [id], cursor: {column: id, type: integer}, schedule: "@every 200ms"}
    emit:
      - {name: seen, type: com.example.invoice.seen, subject: string(after.id), data: after}
`, dsn)
	f.Close()
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, p, 20*time.Second, "the reload applied and billing emitted", func() (bool, string) {
		st := statusOf(t, admin)
		_, _, billing, _ := st.connector("billing")
		return st.LastReload != nil && st.LastReload.Result == "applied" && billing == 1, fmt.Sprintf("%+v %+v", st.LastReload, st.Connectors)
	})
	st := statusOf(t, admin)
	lr := st.LastReload
	if fmt.Sprint(lr.Connectors.Changed) != "[erp]" || fmt.Sprint(lr.Connectors.Added) != "[billing]" || len(lr.Connectors.Removed) != 0 || lr.By != "signal:SIGHUP" {
		t.Errorf("last_reload %+v, want erp changed, billing added, by signal:SIGHUP", lr)
	}
	state, since, n, _ := st.connector("crm")
	if state != "running" || !since.Equal(crmSince) || n != 2 {
		t.Errorf("crm, unchanged, was touched: %s since %s (was %s), %d emitted", state, since, crmSince, n)
	}
	if _, since, n, _ := st.connector("erp"); since.Equal(erpSince) || n != 0 {
		t.Errorf("erp, changed, was not restarted: since %s (was %s), %d emitted since (want 0: it resumed from its checkpoint)", since, erpSince, n)
	}
	if !strings.Contains(p.logs.String(), "configuration reloaded") {
		t.Errorf("the log does not report the reload:\n%s", p.logs)
	}

	// An invalid file: nothing changes.
	good, _ := os.ReadFile(cfgFile)
	rewrite(t, cfgFile, "    type: sql_poll\n", "    type: sql_poll\n    colour: blue\n", "shutdown: {timeout: 10s}", "shutdown: {timeout: 12s}")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, p, 20*time.Second, "the invalid reload reported", func() (bool, string) {
		st := statusOf(t, admin)
		return st.LastReload != nil && st.LastReload.Result == "invalid" && len(st.LastReload.Problems) > 0, fmt.Sprintf("%+v", st.LastReload)
	})
	if !strings.Contains(p.logs.String(), "configuration reload refused") || !strings.Contains(p.logs.String(), "colour") {
		t.Errorf("the log does not report the refused reload and its problem:\n%s", p.logs)
	}
	var rep reloadReport
	if code := adminDo(t, "POST", "http://"+admin+"/v1/reload", "", &rep); code != http.StatusUnprocessableEntity || rep.Result != "invalid" || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0].Message+rep.Problems[0].Field, "colour") {
		t.Errorf("POST /v1/reload of an invalid file answered %d %+v", code, rep)
	}
	insertCustomers(t, db, 3, 3)
	eventually(t, p, 20*time.Second, "crm still runs after the refused reloads", func() (bool, string) {
		st := statusOf(t, admin)
		state, _, n, _ := st.connector("crm")
		_, _, b, ok := st.connector("billing")
		return state == "running" && n == 3 && ok && b == 1, fmt.Sprintf("%+v", st.Connectors)
	})

	// Fixed again, with only the shutdown timeout changed: nothing
	// restarts, and the timeout needs a restart.
	if err := os.WriteFile(cfgFile, []byte(strings.Replace(string(good), "shutdown: {timeout: 10s}", "shutdown: {timeout: 12s}", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	rep = reloadReport{}
	if code := adminDo(t, "POST", "http://"+admin+"/v1/reload", "", &rep); code != 200 || rep.Result != "unchanged" || fmt.Sprint(rep.NeedsRestart) != "[shutdown]" || !strings.HasPrefix(rep.By, "127.0.0.1:") {
		raw, _ := json.Marshal(rep)
		t.Errorf("POST /v1/reload answered %d %s, want unchanged, needs_restart [shutdown]", code, raw)
	}
}
