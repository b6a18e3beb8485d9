package mysql_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

func keysOf(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return sortStrings(out)
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// TestDDLMidStreamRestart: rows written between ALTER TABLE statements are
// decoded with the columns of their own time, also when a restart reads
// them again after the table changed further; each statement is a schema
// change of its own.
func TestDDLMidStreamRestart(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10))`)
	cfg := d.config("t")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	dir := t.TempDir()
	src := openSource(t, cfg, dir, core.Position{})
	d.exec(t,
		`INSERT INTO t VALUES (1, 'one')`,
		`ALTER TABLE t ADD COLUMN b INT UNSIGNED AFTER id`,
		`INSERT INTO t VALUES (2, 4000000000, 'two')`,
		`ALTER TABLE t DROP COLUMN a`,
		`INSERT INTO t VALUES (3, 3)`,
		`ALTER TABLE t MODIFY b VARCHAR(12)`,
		`ALTER TABLE t RENAME COLUMN b TO c, ADD COLUMN d JSON FIRST`,
		`INSERT INTO t (id, c, d) VALUES (4, 'y', '[1]')`,
	)
	first := readN(t, src, 8)
	wantKinds := []string{"create", "schema_change", "create", "schema_change", "create", "schema_change", "schema_change", "create"}
	for i, ch := range first {
		kind := string(ch.Op)
		if ch.Op == core.OpMessage {
			kind = fmt.Sprint(ch.Meta["kind"])
		}
		if kind != wantKinds[i] {
			t.Fatalf("change %d is %s, want %s: %+v", i, kind, wantKinds[i], ch)
		}
	}
	rows := []struct {
		i    int
		want map[string]any
	}{
		{0, map[string]any{"id": int64(1), "a": "one"}},
		{2, map[string]any{"id": int64(2), "b": int64(4000000000), "a": "two"}},
		{4, map[string]any{"id": int64(3), "b": int64(3)}},
		{7, map[string]any{"d": []any{float64(1)}, "id": int64(4), "c": "y"}},
	}
	check := func(run string, chs []core.Change, offset int) {
		t.Helper()
		for _, r := range rows {
			if r.i < offset {
				continue
			}
			got := chs[r.i-offset].After
			if normal(got) != normal(r.want) {
				t.Errorf("%s: row %d = %v, want %v", run, r.i, got, r.want)
			}
		}
	}
	check("first run", first, 0)
	sc := first[6].Payload.(map[string]any)
	if sc["table"] != "t" || !strings.Contains(sc["ddl"].(string), "RENAME COLUMN") || len(sc["columns"].([]any)) != 3 {
		t.Fatalf("schema change payload %v", sc)
	}
	closeSource(t, src)
	// Restart after the first row: the rest is decoded again with the
	// history, though the table now has columns (d, id, c).
	src2 := openSource(t, cfg, dir, first[0].Position)
	again := readN(t, src2, 7)
	check("after restart", again, 1)
	for i, ch := range again {
		if string(ch.Position.Data) != string(first[i+1].Position.Data) {
			t.Fatalf("change %d: position %s, first run %s", i+1, ch.Position, first[i+1].Position)
		}
	}
}

// TestUnfollowableDDL: a statement on a captured table the parser cannot
// follow stops the stream with an error naming the statement.
func TestUnfollowableDDL(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE t (id INT PRIMARY KEY)`, `CREATE TABLE src (id INT PRIMARY KEY, v INT)`)
	cfg := d.config("t")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	src := openSource(t, cfg, t.TempDir(), core.Position{})
	d.exec(t, `ALTER TABLE t ADD SYSTEM VERSIONING`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, err := src.Read(ctx)
		if err == nil {
			continue
		}
		if !strings.Contains(err.Error(), "ADD SYSTEM VERSIONING") || !strings.Contains(err.Error(), "cannot follow") {
			t.Fatalf("Read: %v", err)
		}
		return
	}
}

// TestCrashInsideLargeTransaction: a restart from a checkpoint inside a
// transaction reads the transaction again and emits the rest of it with
// the same positions (and so the same event ids).
func TestCrashInsideLargeTransaction(t *testing.T) {
	const n = 100000
	d := newDB(t)
	d.exec(t, `CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(20))`)
	cfg := d.config("big")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	dir := t.TempDir()
	src := openSource(t, cfg, dir, core.Position{})
	d.exec(t, `SET SESSION max_recursive_iterations = 200000`, `INSERT INTO big (id, v) WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100000) SELECT i, CONCAT('v', i) FROM s`)
	first := readN(t, src, n)
	closeSource(t, src)
	const cut = 54321
	src2 := openSource(t, cfg, dir, first[cut].Position)
	rest := readN(t, src2, n-cut-1)
	for i, ch := range rest {
		w := first[cut+1+i]
		if string(ch.Position.Data) != string(w.Position.Data) || !reflect.DeepEqual(ch.After, w.After) {
			t.Fatalf("change %d after restart: %s %v, first run %s %v", i, ch.Position, ch.After, w.Position, w.After)
		}
	}
	if first[0].Source.TxID == "" || first[0].Source.TxID != first[n-1].Source.TxID || first[0].Source.CommitTime.IsZero() {
		t.Fatalf("source %+v ... %+v", first[0].Source, first[n-1].Source)
	}
}

// TestMultiTableTransactionOrder: the changes of one transaction over
// several tables come in statement order, with one transaction id.
func TestMultiTableTransactionOrder(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE a (id INT PRIMARY KEY, v INT)`, `CREATE TABLE b (id INT PRIMARY KEY, v INT)`, `CREATE TABLE other (id INT PRIMARY KEY)`)
	cfg := d.config("a", "b")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	src := openSource(t, cfg, t.TempDir(), core.Position{})
	d.exec(t, `BEGIN; INSERT INTO a VALUES (1, 1); INSERT INTO b VALUES (1, 1); INSERT INTO other VALUES (1);
		UPDATE a SET v = 2 WHERE id = 1; DELETE FROM b WHERE id = 1; INSERT INTO b VALUES (2, 2); COMMIT`,
		`TRUNCATE TABLE a`)
	chs := readN(t, src, 6)
	want := []string{"create a", "create b", "update a", "delete b", "create b", "truncate a"}
	for i, ch := range chs {
		if got := string(ch.Op) + " " + ch.Source.Table; got != want[i] {
			t.Fatalf("change %d is %s, want %s", i, got, want[i])
		}
		if i < 5 && ch.Source.TxID != chs[0].Source.TxID {
			t.Fatalf("change %d in transaction %s, the first in %s", i, ch.Source.TxID, chs[0].Source.TxID)
		}
	}
	if chs[2].Before["v"] != int64(1) || chs[2].After["v"] != int64(2) || chs[3].Before["id"] != int64(1) || chs[3].Key["id"] != int64(1) {
		t.Fatalf("update %+v, delete %+v", chs[2], chs[3])
	}
}

// TestHeartbeatAdvancesIdleCheckpoint: transactions of tables not
// captured yield a heartbeat change whose position resumes after them.
func TestHeartbeatAdvancesIdleCheckpoint(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE a (id INT PRIMARY KEY)`, `CREATE TABLE other (id INT PRIMARY KEY)`)
	cfg := d.config("a")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	dir := t.TempDir()
	src := openSource(t, cfg, dir, core.Position{})
	d.exec(t, `INSERT INTO other VALUES (1)`)
	time.Sleep(300 * time.Millisecond)
	d.exec(t, `INSERT INTO other VALUES (2)`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var hb core.Change
	for hb.Position.IsZero() {
		b, err := src.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range b {
			if ch.Meta["kind"] == "heartbeat" {
				hb = ch
			}
		}
	}
	closeSource(t, src)
	d.exec(t, `INSERT INTO a VALUES (7)`)
	src2 := openSource(t, cfg, dir, hb.Position)
	if chs := readN(t, src2, 1); chs[0].After["id"] != int64(7) {
		t.Fatalf("after the heartbeat: %+v", chs[0])
	}
}

// TestPurgedBinlog: a checkpoint whose binlog the server purged is a fatal
// error naming the position and the re-snapshot option; with
// snapshot.mode when_needed the tables are read again.
func TestPurgedBinlog(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE a (id INT PRIMARY KEY)`)
	cfg := d.config("a")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	dir := t.TempDir()
	src := openSource(t, cfg, dir, core.Position{})
	d.exec(t, `INSERT INTO a VALUES (1)`)
	pos := readN(t, src, 1)[0].Position
	closeSource(t, src)
	d.exec(t, `INSERT INTO a VALUES (2)`)
	purgeBinlogs(t, d)
	cfg["snapshot"] = map[string]any{"mode": "initial"}
	s := newSource(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.Open(ctx, core.Env{Name: "mytest", StateDir: dir}, pos)
	_ = s.Close(ctx)
	if err == nil || !errors.Is(err, core.ErrFatal) || !strings.Contains(err.Error(), "when_needed") || !strings.Contains(err.Error(), "gtid:") {
		t.Fatalf("Open from a purged position: %v", err)
	}
	cfg["snapshot"] = map[string]any{"mode": "when_needed"}
	src3 := openSource(t, cfg, dir, pos)
	chs := readN(t, src3, 2)
	if chs[0].Op != core.OpRead || chs[1].After["id"] != int64(2) {
		t.Fatalf("after the purge: %+v", chs)
	}
}

// TestSnapshotCrashResume: a snapshot resumed from a checkpoint in its
// middle reads the rest of the table after the last key delivered, with
// the same positions, then streams from the first snapshot's place.
func TestSnapshotCrashResume(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE a (id INT PRIMARY KEY, v INT)`, `CREATE TABLE b (k VARCHAR(5), n INT, PRIMARY KEY (k, n))`)
	for i := 1; i <= 25; i++ {
		d.exec(t, sprintf(`INSERT INTO a VALUES (%d, %d)`, i, i), sprintf(`INSERT INTO b VALUES ('k%d', %d)`, i%3, i))
	}
	cfg := d.config("a", "b")
	cfg["snapshot"] = map[string]any{"chunk_size": 10}
	dir := t.TempDir()
	src := openSource(t, cfg, dir, core.Position{})
	first := readN(t, src, 50)
	closeSource(t, src)
	d.exec(t, `INSERT INTO b VALUES ('z', 99)`)
	for _, cut := range []int{4, 29} {
		src2 := openSource(t, cfg, dir, first[cut].Position)
		rest := readN(t, src2, 50-cut-1+2)
		for i := range 50 - cut - 1 {
			if rest[i].Op != core.OpRead || string(rest[i].Position.Data) != string(first[cut+1+i].Position.Data) {
				t.Fatalf("cut %d: change %d %s %s, first run %s", cut, i, rest[i].Op, rest[i].Position, first[cut+1+i].Position)
			}
		}
		tail := rest[len(rest)-2:]
		if tail[0].Op != core.OpRead || tail[0].After["k"] != "z" || tail[1].Op != core.OpCreate || tail[1].After["k"] != "z" {
			t.Fatalf("cut %d: tail %+v", cut, tail)
		}
		closeSource(t, src2)
	}
}

// purgeBinlogs purges every binlog but a new one. The server keeps a
// binlog until its checkpoint (InnoDB's) moved past it, so it may take a
// few tries.
func purgeBinlogs(t *testing.T, d *db) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	d.exec(t, `FLUSH BINARY LOGS`)
	for {
		var names []string
		rows, err := d.sql.Query(`SHOW BINARY LOGS`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			var name string
			rest := make([]any, len(cols)-1)
			for i := range rest {
				rest[i] = new(any)
			}
			_ = rows.Scan(append([]any{&name}, rest...)...)
			names = append(names, name)
		}
		rows.Close()
		if len(names) == 1 {
			return
		}
		d.exec(t, `PURGE BINARY LOGS TO '`+names[len(names)-1]+`'`)
		if time.Now().After(deadline) {
			t.Fatalf("the server keeps binlogs %v", names)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
