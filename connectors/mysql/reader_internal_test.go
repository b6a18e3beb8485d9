package mysql

import (
	"context"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// synthetic binlog events, as go-mysql decodes them from a server.
func ev(typ replication.EventType, logPos, size uint32, e replication.Event) *replication.BinlogEvent {
	return &replication.BinlogEvent{Header: &replication.EventHeader{EventType: typ, LogPos: logPos, EventSize: size, Timestamp: 1700000000}, Event: e}
}

func insertEvent(id int32) *replication.BinlogEvent {
	return ev(replication.WRITE_ROWS_EVENTv2, 0, 0, &replication.RowsEvent{
		Table:       &replication.TableMapEvent{Schema: []byte("shop"), Table: []byte("orders")},
		ColumnCount: 3, Rows: [][]any{{id, "9.50", "new"}},
	})
}

func testReader(t *testing.T, flavor string, start binlogPos, resume string, resumeIdx int) *reader {
	h, err := openHistory(t.TempDir(), flavor)
	if err != nil {
		t.Fatal(err)
	}
	return &reader{
		flavor: flavor, q: newQueue(1000), hist: h, sch: testSchema(),
		captured: map[string]bool{"shop.orders": true}, applier: testApplier(),
		interval: time.Hour, cur: start, file: start.file, resume: resume, resumeIdx: resumeIdx, lastOut: time.Now(),
	}
}

func drain(t *testing.T, r *reader) []core.Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	chs, _ := r.q.take(ctx)
	return chs
}

// TestMySQLGTIDTransactions drives the reader with the events of a MySQL
// server with gtid_mode=ON: positions carry the GTID set before each
// transaction, and a restart inside a transaction skips what was
// delivered.
func TestMySQLGTIDTransactions(t *testing.T) {
	sid := uuid.MustParse("3e11fa47-71ca-11e1-9e33-c80aa9429562")
	start, _ := parsePos(gomysql.MySQLFlavor, "gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10")
	txn := func(r *reader, gno int64, ids ...int32) {
		t.Helper()
		events := []*replication.BinlogEvent{
			ev(replication.GTID_EVENT, 0, 0, &replication.GTIDEvent{SID: sid[:], GNO: gno, ImmediateCommitTimestamp: 1700000000123456}),
			ev(replication.QUERY_EVENT, 0, 0, &replication.QueryEvent{Query: []byte("BEGIN")}),
		}
		for _, id := range ids {
			events = append(events, insertEvent(id))
		}
		events = append(events, ev(replication.XID_EVENT, 0, 0, &replication.XIDEvent{XID: 9}))
		for _, e := range events {
			if err := r.HandleEvent(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := testReader(t, gomysql.MySQLFlavor, start.clone(), "", 0)
	txn(r, 11, 1, 2, 3)
	txn(r, 12, 4)
	chs := drain(t, r)
	if len(chs) != 4 {
		t.Fatalf("%d changes", len(chs))
	}
	wantPos := []string{
		`{"lsn":"gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10","i":0}`,
		`{"lsn":"gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10","i":1}`,
		`{"lsn":"gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10","i":2}`,
		`{"lsn":"gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-11","i":0}`,
	}
	for i, ch := range chs {
		if string(ch.Position.Data) != wantPos[i] {
			t.Fatalf("change %d at %s, want %s", i, ch.Position.Data, wantPos[i])
		}
	}
	if chs[0].Source.TxID != "3e11fa47-71ca-11e1-9e33-c80aa9429562:11" || !chs[0].Source.CommitTime.Equal(time.UnixMicro(1700000000123456)) {
		t.Fatalf("source %+v", chs[0].Source)
	}
	if chs[0].After["total"] != "9.50" && chs[0].After["id"] != int64(1) {
		t.Fatalf("after %+v", chs[0].After)
	}
	// A restart from the second change reads the transaction again and
	// emits its last change only, at the same position.
	p, _ := cdc.DecodePosition(chs[1].Position)
	from, _ := parsePos(gomysql.MySQLFlavor, p.Commit)
	r2 := testReader(t, gomysql.MySQLFlavor, from, p.Commit, p.Index)
	txn(r2, 11, 1, 2, 3)
	txn(r2, 12, 4)
	again := drain(t, r2)
	if len(again) != 2 || string(again[0].Position.Data) != wantPos[2] || string(again[1].Position.Data) != wantPos[3] {
		t.Fatalf("after restart: %+v", again)
	}
}

// TestFilePositions drives the reader with a server without GTIDs: a
// transaction is named by the file and offset of its first event.
func TestFilePositions(t *testing.T) {
	start := binlogPos{file: "binlog.000007", pos: 4}
	r := testReader(t, gomysql.MySQLFlavor, start, "", 0)
	events := []*replication.BinlogEvent{
		ev(replication.ROTATE_EVENT, 0, 0, &replication.RotateEvent{Position: 4, NextLogName: []byte("binlog.000007")}),
		ev(replication.QUERY_EVENT, 300, 60, &replication.QueryEvent{Query: []byte("BEGIN")}),
		insertEvent(1),
		ev(replication.XID_EVENT, 420, 31, &replication.XIDEvent{}),
		ev(replication.QUERY_EVENT, 500, 80, &replication.QueryEvent{Schema: []byte("shop"), Query: []byte("ALTER TABLE orders ADD note TEXT")}),
		ev(replication.QUERY_EVENT, 560, 60, &replication.QueryEvent{Query: []byte("BEGIN")}),
		ev(replication.WRITE_ROWS_EVENTv2, 0, 0, &replication.RowsEvent{
			Table:       &replication.TableMapEvent{Schema: []byte("shop"), Table: []byte("orders")},
			ColumnCount: 4, Rows: [][]any{{int32(2), "1.00", "new", "hello"}},
		}),
		ev(replication.XID_EVENT, 700, 31, &replication.XIDEvent{}),
	}
	for _, e := range events {
		if err := r.HandleEvent(e); err != nil {
			t.Fatal(err)
		}
	}
	chs := drain(t, r)
	want := []string{`{"lsn":"file:binlog.000007:240","i":0}`, `{"lsn":"file:binlog.000007:420","i":0}`, `{"lsn":"file:binlog.000007:500","i":0}`}
	if len(chs) != 3 {
		t.Fatalf("%d changes: %+v", len(chs), chs)
	}
	for i, ch := range chs {
		if string(ch.Position.Data) != want[i] {
			t.Fatalf("change %d at %s, want %s", i, ch.Position.Data, want[i])
		}
	}
	if chs[1].Meta["kind"] != "schema_change" || chs[2].After["note"] != "hello" {
		t.Fatalf("schema change %+v, row %+v", chs[1], chs[2])
	}
	if s, ok := r.hist.at(binlogPos{file: "binlog.000007", pos: 500}); !ok || len(s["shop.orders"].Columns) != 4 {
		t.Fatalf("history after the ALTER: %v", s)
	}
}

// TestRollbackEndsTransaction: a transaction logged with ROLLBACK (its
// non-transactional changes happened anyway) ends there; the next one is
// named by its own first event.
func TestRollbackEndsTransaction(t *testing.T) {
	r := testReader(t, gomysql.MySQLFlavor, binlogPos{file: "binlog.000001", pos: 4}, "", 0)
	events := []*replication.BinlogEvent{
		ev(replication.ROTATE_EVENT, 0, 0, &replication.RotateEvent{Position: 4, NextLogName: []byte("binlog.000001")}),
		ev(replication.QUERY_EVENT, 200, 60, &replication.QueryEvent{Query: []byte("BEGIN")}),
		insertEvent(1),
		ev(replication.QUERY_EVENT, 320, 60, &replication.QueryEvent{Query: []byte("ROLLBACK")}),
		ev(replication.QUERY_EVENT, 400, 80, &replication.QueryEvent{Query: []byte("BEGIN")}),
		insertEvent(2),
		ev(replication.XID_EVENT, 500, 31, &replication.XIDEvent{}),
	}
	for _, e := range events {
		if err := r.HandleEvent(e); err != nil {
			t.Fatal(err)
		}
	}
	chs := drain(t, r)
	want := []string{`{"lsn":"file:binlog.000001:140","i":0}`, `{"lsn":"file:binlog.000001:320","i":0}`}
	if len(chs) != 2 || string(chs[0].Position.Data) != want[0] || string(chs[1].Position.Data) != want[1] {
		t.Fatalf("positions %+v", chs)
	}
}

// TestTableMapSignednessDropped checks that the reader drops a table
// map's signedness bitmap before the syncer decodes the rows after it:
// with one, go-mysql builds a map of the unsigned columns for every row it
// decodes. integer reads an UNSIGNED column's value from the schema
// history either way (TestTypesRoundTrip covers the values).
func TestTableMapSignednessDropped(t *testing.T) {
	r := testReader(t, gomysql.MariaDBFlavor, binlogPos{file: "bin.000001", pos: 4}, "", 0)
	tm := &replication.TableMapEvent{
		Schema: []byte("shop"), Table: []byte("orders"), ColumnCount: 3,
		ColumnType:       []byte{gomysql.MYSQL_TYPE_LONG, gomysql.MYSQL_TYPE_NEWDECIMAL, gomysql.MYSQL_TYPE_VARCHAR},
		SignednessBitmap: []byte{0x80},
	}
	if tm.UnsignedMap() == nil {
		t.Fatal("the table map under test has no signedness to drop")
	}
	if err := r.HandleEvent(ev(replication.TABLE_MAP_EVENT, 0, 0, tm)); err != nil {
		t.Fatal(err)
	}
	if m := tm.UnsignedMap(); m != nil {
		t.Errorf("after the reader: UnsignedMap() = %v, want nil (no map per decoded row)", m)
	}
}
