package audit_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/core"
)

// Search keeps the events every filter of the query selects, in time
// order, the first Limit of them.
func TestSearchFilters(t *testing.T) {
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	tests := []struct {
		name string
		q    audit.Query
		want string
	}{
		{name: "everything", q: audit.Query{}, want: "ev-00000,ev-00001,ev-00002,ev-00003,ev-00004,ev-00005,ev-00006,ev-00007,ev-00008,ev-00009,ev-00010,ev-00011"},
		{name: "one type", q: audit.Query{Types: []string{"com.example.order.shipped"}}, want: "ev-00001,ev-00003,ev-00005,ev-00007,ev-00009,ev-00011"},
		{name: "two types", q: audit.Query{Types: []string{"com.example.order.shipped", "com.example.order.placed"}, Limit: 3}, want: "ev-00000,ev-00001,ev-00002"},
		{name: "unknown type", q: audit.Query{Types: []string{"com.example.nothing"}}, want: ""},
		{name: "subject", q: audit.Query{Subject: "o-2"}, want: "ev-00002,ev-00009"},
		{name: "since, inclusive", q: audit.Query{Since: at(9)}, want: "ev-00009,ev-00010,ev-00011"},
		{name: "until, exclusive", q: audit.Query{Until: at(2)}, want: "ev-00000,ev-00001"},
		{name: "time range", q: audit.Query{Since: at(3), Until: at(6)}, want: "ev-00003,ev-00004,ev-00005"},
		{name: "id", q: audit.Query{ID: "ev-00007"}, want: "ev-00007"},
		{name: "id and another filter that excludes it", q: audit.Query{ID: "ev-00007", Types: []string{"com.example.order.placed"}}, want: ""},
		{name: "limit", q: audit.Query{Limit: 2}, want: "ev-00000,ev-00001"},
		{name: "every filter", q: audit.Query{Types: []string{"com.example.order.placed"}, Subject: "o-1", Since: at(1), Until: at(12)}, want: "ev-00008"},
	}
	forEachBackend(t, func(t *testing.T, values map[string]any) {
		s, _ := openSink(t, values)
		// Written out of time order, in two calls.
		write(t, s, deliveries(eventRange(6, 12)...))
		write(t, s, deliveries(eventRange(0, 6)...))
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := ids(search(t, s, tt.q)); got != tt.want {
					t.Errorf("got  %s\nwant %s", got, tt.want)
				}
			})
		}
	})
}

// Events with no time come first, and a time filter leaves them out;
// events of one time come in id order.
func TestSearchOrdersByTimeThenID(t *testing.T) {
	forEachBackend(t, func(t *testing.T, values map[string]any) {
		s, _ := openSink(t, values)
		timeless := &core.Event{ID: "z-timeless", Source: "/s", SpecVersion: core.SpecVersion, Type: "t"}
		b := &core.Event{ID: "b-same", Source: "/s", SpecVersion: core.SpecVersion, Type: "t", Time: base}
		a := &core.Event{ID: "a-same", Source: "/s", SpecVersion: core.SpecVersion, Type: "t", Time: base}
		write(t, s, deliveries(b, timeless, a))
		if got := ids(search(t, s, audit.Query{})); got != "z-timeless,a-same,b-same" {
			t.Errorf("order = %s, want z-timeless,a-same,b-same", got)
		}
		if got := ids(search(t, s, audit.Query{Until: base.Add(time.Hour)})); got != "a-same,b-same" {
			t.Errorf("with until: %s, want a-same,b-same", got)
		}
	})
}

// Scan reads the log a page at a time: across page boundaries that fall
// among events with no time and among events of one time, it returns
// every event once, in Search's order, and stops at a Limit past a page.
func TestScanPagesInOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, values map[string]any) {
		s, _ := openSink(t, values)
		const n = 2345
		var evs []*core.Event
		for i := range n {
			e := event(i)
			switch {
			case i%3 == 0:
				e.Time = time.Time{}
			default:
				e.Time = base.Add(time.Duration(i/10) * time.Second)
			}
			evs = append(evs, e)
		}
		for i := 0; i < n; i += 500 {
			write(t, s, deliveries(evs[i:min(i+500, n)]...))
		}
		want := slices.Clone(evs)
		slices.SortFunc(want, func(a, b *core.Event) int {
			if c := a.Time.Compare(b.Time); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		var got []string
		err := audit.Scan(context.Background(), s.DB(), audit.Query{}, func(e *core.Event) error {
			got = append(got, e.ID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("Scan returned %d events, want %d", len(got), n)
		}
		for i, e := range want {
			if got[i] != e.ID {
				t.Fatalf("event %d is %s, want %s", i, got[i], e.ID)
			}
		}
		limited := search(t, s, audit.Query{Limit: 1500})
		if len(limited) != 1500 || limited[1499].ID != want[1499].ID {
			t.Errorf("Limit 1500: %d events, last %s; want 1500, last %s", len(limited), limited[len(limited)-1].ID, want[1499].ID)
		}
		for _, tt := range []struct {
			id   string
			want bool
		}{{want[7].ID, true}, {"ev-none", false}} {
			if held, err := audit.Holds(context.Background(), s.DB(), tt.id); err != nil || held != tt.want {
				t.Errorf("Holds(%s) = %v, %v; want %v", tt.id, held, err, tt.want)
			}
		}
	})
}

// A search by subject finds the events of the subject that the id runs
// cover (in the subjects' index) and those above them (the tail), in
// time order, across pages, within a time range, after the sink opens
// the log again (the tail read back) and from another reader.
func TestSearchBySubjectAcrossRuns(t *testing.T) {
	dir := t.TempDir()
	s := openRuns(t, dir, 64)
	const n = 2730
	var evs []*core.Event
	for i := range n {
		e := event(i)
		// Times out of seq order, many shared; a few without one.
		e.Subject = []string{"busy", "busy", "busy", "quiet", "rare"}[i%5]
		e.Time = base.Add(time.Duration((i*7919)%n/3) * time.Second)
		if i%97 == 0 {
			e.Time = time.Time{}
		}
		if i%11 == 0 {
			e.Subject = ""
		}
		evs = append(evs, e)
	}
	for i := 0; i < n; i += 100 {
		write(t, s, deliveries(evs[i:min(i+100, n)]...))
	}
	want := func(subject string, since, until time.Time) []string {
		var sel []*core.Event
		for _, e := range evs {
			timed := !since.IsZero() || !until.IsZero()
			if e.Subject != subject || (timed && e.Time.IsZero()) || (!since.IsZero() && e.Time.Before(since)) || (!until.IsZero() && !e.Time.Before(until)) {
				continue
			}
			sel = append(sel, e)
		}
		slices.SortFunc(sel, func(a, b *core.Event) int {
			if c := a.Time.Compare(b.Time); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		out := make([]string, len(sel))
		for i, e := range sel {
			out[i] = e.ID
		}
		return out
	}
	check := func(t *testing.T, db *audit.DB) {
		t.Helper()
		for _, q := range []audit.Query{
			{Subject: "busy"},
			{Subject: "quiet"},
			{Subject: "rare", Since: base.Add(100 * time.Second), Until: base.Add(600 * time.Second)},
			{Subject: "busy", Until: base.Add(300 * time.Second)},
			{Subject: "nobody"},
		} {
			var got []string
			if err := audit.Scan(context.Background(), db, q, func(e *core.Event) error {
				got = append(got, e.ID)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if w := want(q.Subject, q.Since, q.Until); !slices.Equal(got, w) {
				t.Fatalf("subject %s (%v to %v): %d events, want %d", q.Subject, q.Since, q.Until, len(got), len(w))
			}
		}
		limited, err := audit.Search(context.Background(), db, audit.Query{Subject: "busy", Limit: 1200})
		if w := want("busy", time.Time{}, time.Time{})[:1200]; err != nil || ids(limited) != strings.Join(w, ",") {
			t.Fatalf("busy, limit 1200: %d events, %v", len(limited), err)
		}
	}
	check(t, s.DB())
	var covered, indexed, inTail int
	if err := s.DB().SQL().QueryRow(`SELECT (SELECT max(upto) FROM audit_id_runs), (SELECT count(*) FROM audit_subjects),
		(SELECT count(*) FROM audit_events WHERE subject IS NOT NULL AND seq > (SELECT max(upto) FROM audit_id_runs))`).Scan(&covered, &indexed, &inTail); err != nil {
		t.Fatal(err)
	}
	if covered == 0 || inTail == 0 || indexed == 0 {
		t.Fatalf("runs cover %d, %d subjects indexed, %d in the tail; want some of each", covered, indexed, inTail)
	}

	cfg, err := audit.ParseConfig(core.NewConfig("audit_log", nil))
	if err != nil {
		t.Fatal(err)
	}
	db, err := audit.Open(context.Background(), cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check(t, db)

	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = openRuns(t, dir, 64)
	more := make([]*core.Event, 0, 300)
	for i := n; i < n+300; i++ {
		e := event(i)
		e.Subject = "busy"
		more = append(more, e)
	}
	write(t, s, deliveries(more...))
	evs = append(evs, more...)
	check(t, s.DB())
	check(t, db)
}

// The plan of a search by subject reads the subjects' index in its
// order and the events by seq, stopping after the page: not every event
// of the subject, nor every event in time order.
func TestSearchBySubjectUsesTheSubjectsIndex(t *testing.T) {
	s := openRuns(t, t.TempDir(), 8)
	write(t, s, deliveries(eventRange(0, 40)...))
	rows, err := s.DB().SQL().Query(`EXPLAIN QUERY PLAN SELECT e.id FROM audit_subjects s CROSS JOIN audit_events e ON e.seq = s.seq
		WHERE s.subject = ?1 AND s.time >= ?2 AND e.subject = ?1 AND (e.time > ?2 OR (e.time = ?2 AND e.id > ?3)) ORDER BY s.time, e.id LIMIT 10`,
		"o-1", "2026-03-01T12:00:00.000000000Z", "ev-00001")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	text := strings.Join(plan, "\n")
	if !strings.Contains(text, "SEARCH s USING PRIMARY KEY (subject=? AND time>?)") || !strings.Contains(text, "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)") ||
		strings.Contains(text, "TEMP B-TREE FOR ORDER BY") {
		t.Errorf("plan:\n%s", text)
	}
}
