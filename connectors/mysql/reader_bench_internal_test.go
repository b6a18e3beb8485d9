package mysql

import (
	"context"
	"syscall"
	"testing"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// BenchmarkReaderRows measures the reader alone on the rows of the
// catch-up benchmark's table (BIGINT key, VARCHAR, DECIMAL, DATETIME(6)),
// as go-mysql hands them over: from the rows event to the changes taken
// from the queue, 100 rows an event, per row.
func BenchmarkReaderRows(b *testing.B) {
	h, err := openHistory(b.TempDir(), gomysql.MariaDBFlavor)
	if err != nil {
		b.Fatal(err)
	}
	sch := schema{"shop.bench": {DB: "shop", Name: "bench", Key: []string{"id"}, Columns: []column{
		{Name: "id", Type: "bigint"}, {Name: "name", Type: "varchar"}, {Name: "total", Type: "decimal"}, {Name: "created", Type: "datetime", Length: 6},
	}}}
	start, err := parsePos(gomysql.MariaDBFlavor, "gtid:0-1-1")
	if err != nil {
		b.Fatal(err)
	}
	r := &reader{
		flavor: gomysql.MariaDBFlavor, q: newQueue(1 << 20), hist: h, sch: sch,
		captured: map[string]bool{"shop.bench": true}, applier: testApplier(),
		interval: time.Hour, cur: start, lastOut: time.Now(),
	}
	rows := make([][]any, 100)
	at := time.Date(2026, 12, 7, 0, 5, 5, 123456000, time.UTC)
	for i := range rows {
		id := int64(1000000 + i)
		rows[i] = []any{id, "order 1000042", "1250052.50", at}
	}
	tm := &replication.TableMapEvent{Schema: []byte("shop"), Table: []byte("bench")}
	gtid := &replication.MariadbGTIDEvent{GTID: gomysql.MariadbGTID{DomainID: 0, ServerID: 1, SequenceNumber: 1}}
	events := []*replication.BinlogEvent{
		ev(replication.MARIADB_GTID_EVENT, 0, 0, gtid),
		ev(replication.WRITE_ROWS_EVENTv1, 0, 0, &replication.RowsEvent{Table: tm, ColumnCount: 4, Rows: rows}),
		ev(replication.XID_EVENT, 0, 0, &replication.XIDEvent{}),
	}
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		gtid.GTID.SequenceNumber++
		for _, e := range events {
			if err := r.HandleEvent(e); err != nil {
				b.Fatal(err)
			}
		}
		if chs, err := r.q.take(ctx); err != nil || len(chs) != len(rows) {
			b.Fatalf("took %d changes (%v), want %d", len(chs), err, len(rows))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
	// CPU time (of the whole process, garbage collection included) says
	// more than wall time on a shared machine.
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N*len(rows)), "cpu-ns/row")
}

// processCPU returns the CPU time (user and system) this process spent so
// far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
