package postgres_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tributary/tributary/core"
)

func TestOutbox(t *testing.T) {
	d := newDB(t)
	ob, orders := d.table("outbox"), d.table("orders")
	d.exec(t,
		sprintf(`create table %s (id uuid primary key default gen_random_uuid(), aggregatetype text not null, aggregateid text not null, type text not null, payload jsonb, headers jsonb)`, ob),
		sprintf(`create table %s (id int primary key)`, orders))
	cfg := neverSnapshot(d.config("orders"))
	cfg["outbox"] = map[string]any{"table": "public." + ob, "delete_captured": true}
	src := openSource(t, cfg, core.Position{})
	d.exec(t,
		sprintf(`begin; insert into %[1]s values (7); insert into %[2]s (aggregatetype, aggregateid, type, payload, headers) values ('order', '7', 'OrderPlaced', '{"total": 42.50, "lines": [1]}', '{"trace": "abc"}'); commit`, orders, ob),
		// The Debezium pattern: insert and delete in one transaction.
		sprintf(`begin; insert into %[1]s (aggregatetype, aggregateid, type, payload) values ('order', '8', 'OrderPaid', '{}'); delete from %[1]s where aggregateid = '8'; commit`, ob))
	got := readN(t, src, 3)
	if got[0].Op != core.OpCreate || got[0].Source.Table != orders {
		t.Fatalf("first change %s %s", got[0].Op, got[0].Source.Table)
	}
	msg := got[1]
	if msg.Op != core.OpMessage || msg.Source.Table != ob {
		t.Fatalf("outbox change %s %s", msg.Op, msg.Source.Table)
	}
	if want := map[string]any{"total": json.Number("42.50"), "lines": []any{json.Number("1")}}; !reflect.DeepEqual(msg.Payload, want) {
		t.Errorf("payload = %#v", msg.Payload)
	}
	if msg.Key["aggregateid"] != "7" || msg.Meta["type"] != "OrderPlaced" || msg.Meta["aggregatetype"] != "order" {
		t.Errorf("key %v meta %v", msg.Key, msg.Meta)
	}
	if !reflect.DeepEqual(msg.Meta["headers"], map[string]any{"trace": "abc"}) {
		t.Errorf("headers = %v", msg.Meta["headers"])
	}
	if got[2].Op != core.OpMessage || got[2].Meta["type"] != "OrderPaid" {
		t.Errorf("second outbox change %s %v (its delete must not surface)", got[2].Op, got[2].Meta)
	}
	readNone(t, src)
	ack(t, src, got[2].Position)
	waitFor(t, "captured outbox rows to be deleted", func() bool {
		var n int
		_ = d.pool.QueryRow(context.Background(), sprintf(`select count(*) from %s`, ob)).Scan(&n)
		return n == 0
	})
}
