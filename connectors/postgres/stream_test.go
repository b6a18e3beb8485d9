package postgres_test

import (
	"testing"

	"github.com/tributary/tributary/core"
)

func TestStreamInsertUpdateDelete(t *testing.T) {
	d := newDB(t)
	tb := d.table("orders")
	d.exec(t, sprintf(`create table %s (id int primary key, status text, total numeric(10,2))`, tb),
		sprintf(`insert into %s values (0, 'OLD', 1)`, tb))
	cfg := d.config("orders")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	src := openSource(t, cfg, core.Position{})
	d.exec(t,
		sprintf(`insert into %s values (1, 'NEW', 10.50)`, tb),
		sprintf(`update %s set status = 'PAID' where id = 1`, tb),
		sprintf(`delete from %s where id = 1`, tb))
	got := readN(t, src, 3)
	want := []core.Op{core.OpCreate, core.OpUpdate, core.OpDelete}
	for i, ch := range got {
		if ch.Op != want[i] {
			t.Errorf("change %d op = %s, want %s", i, ch.Op, want[i])
		}
		if ch.Key["id"] != int64(1) {
			t.Errorf("change %d key = %v", i, ch.Key)
		}
		if ch.Source.Table != tb || ch.Source.Schema != "public" || ch.Source.System != "postgres" || ch.Source.TxID == "" || ch.Source.CommitTime.IsZero() {
			t.Errorf("change %d source = %+v", i, ch.Source)
		}
		t.Logf("%s %v before=%v after=%v pos=%s", ch.Op, ch.Key, ch.Before, ch.After, ch.Position)
	}
	if got[0].After["total"].(interface{ String() string }).String() != "10.50" {
		t.Errorf("total = %#v", got[0].After["total"])
	}
	if got[1].After["status"] != "PAID" {
		t.Errorf("update after = %v", got[1].After)
	}
}
