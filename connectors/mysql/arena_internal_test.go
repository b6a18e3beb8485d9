package mysql

import (
	"context"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/tributary/tributary/adapters/cdc"
)

// TestArena checks what the arena hands out: copies of the strings given
// (a nil arena and values longer than arenaMax included), positions
// equal to cdc.StreamPosition's, none of them changed by what is taken
// after it, and each position capped so that an append to it writes over
// nothing else.
func TestArena(t *testing.T) {
	long := strings.Repeat("x", arenaMax+1)
	for _, tc := range []struct {
		name string
		a    *arena
	}{
		{name: "nil arena", a: nil},
		{name: "arena", a: &arena{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := []byte("order 1000042")
			s := tc.a.string(string(src))
			src[0] = 'X' // a buffer the syncer reuses
			p := tc.a.position("0-1-42", 7)
			var more []string
			for i := range arenaBlock / 8 {
				more = append(more, tc.a.string(strings.Repeat(string(rune('a'+i%26)), i%20)))
			}
			l := tc.a.string(long)
			_ = append(p.Data, "overwrite"...)
			if s != "order 1000042" {
				t.Errorf("string = %q, want %q", s, "order 1000042")
			}
			if want := cdc.StreamPosition("0-1-42", 7); p.Version != want.Version || string(p.Data) != string(want.Data) || cap(p.Data) != len(p.Data) {
				t.Errorf("position = v%d %s (cap %d), want v%d %s", p.Version, p.Data, cap(p.Data), want.Version, want.Data)
			}
			for i, m := range more {
				if want := strings.Repeat(string(rune('a'+i%26)), i%20); m != want {
					t.Fatalf("string %d = %q, want %q", i, m, want)
				}
			}
			if l != long || tc.a.string("") != "" {
				t.Errorf("long or empty string changed")
			}
		})
	}
}

// TestReaderRowAllocations checks the allocations of a row of the
// catch-up benchmark's table (BIGINT key, VARCHAR, DECIMAL, DATETIME(6))
// from the rows event to the change taken from the queue: the row's map
// and its key's (two each), the boxed decimal, text and datetime, and a
// share of the queue's slice and of the arena's blocks. Each text value
// and position took an allocation of its own before the arena (11 a
// row); the row's BIGINT now keeps the syncer's boxed value.
func TestReaderRowAllocations(t *testing.T) {
	h, err := openHistory(t.TempDir(), gomysql.MariaDBFlavor)
	if err != nil {
		t.Fatal(err)
	}
	sch := schema{"shop.bench": {DB: "shop", Name: "bench", Key: []string{"id"}, Columns: []column{
		{Name: "id", Type: "bigint"}, {Name: "name", Type: "varchar"}, {Name: "total", Type: "decimal"}, {Name: "created", Type: "datetime", Length: 6},
	}}}
	start, err := parsePos(gomysql.MariaDBFlavor, "gtid:0-1-1")
	if err != nil {
		t.Fatal(err)
	}
	r := &reader{
		flavor: gomysql.MariaDBFlavor, q: newQueue(1 << 20), hist: h, sch: sch,
		captured: map[string]bool{"shop.bench": true}, applier: testApplier(),
		interval: time.Hour, cur: start, lastOut: time.Now(),
	}
	rows := make([][]any, 100)
	at := time.Date(2026, 12, 7, 0, 5, 5, 123456000, time.UTC)
	for i := range rows {
		rows[i] = []any{int64(1000000 + i), "order 1000042", "1250052.50", at}
	}
	tm := &replication.TableMapEvent{Schema: []byte("shop"), Table: []byte("bench")}
	gtid := &replication.MariadbGTIDEvent{GTID: gomysql.MariadbGTID{DomainID: 0, ServerID: 1, SequenceNumber: 1}}
	events := []*replication.BinlogEvent{
		ev(replication.MARIADB_GTID_EVENT, 0, 0, gtid),
		ev(replication.WRITE_ROWS_EVENTv1, 0, 0, &replication.RowsEvent{Table: tm, ColumnCount: 4, Rows: rows}),
		ev(replication.XID_EVENT, 0, 0, &replication.XIDEvent{}),
	}
	ctx := context.Background()
	var failed error
	allocs := testing.AllocsPerRun(50, func() {
		gtid.GTID.SequenceNumber++
		for _, e := range events {
			if err := r.HandleEvent(e); err != nil {
				failed = err
			}
		}
		if chs, err := r.q.take(ctx); err != nil || len(chs) != len(rows) {
			failed = err
		}
	})
	if failed != nil {
		t.Fatal(failed)
	}
	if perRow := allocs / float64(len(rows)); perRow > 7.5 {
		t.Errorf("%.2f allocations a row, want at most 7.5", perRow)
	}
}
