package audit_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
	"github.com/tributary/tributary/core/statedb"
)

// TestReadsFirstLogFormat: a log the first version wrote (frozen in
// testdata/log_v1.sql) opens, searches, lists its replays and takes new
// events.
func TestReadsFirstLogFormat(t *testing.T) {
	dump, err := os.ReadFile(filepath.Join("testdata", "log_v1.sql"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db, err := statedb.Open(filepath.Join(dir, "audit.db"), statedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(dump)); err != nil {
		t.Fatalf("load testdata/log_v1.sql: %v", err)
	}
	db.Close()

	s := audit.New()
	if err := s.Configure(core.NewConfig("audit_log", nil)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Open(ctx, core.Env{Name: "audit_log", StateDir: dir}); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	want := []core.Event{
		{
			ID: "7f1c8a2e-8d0b-5a57-9f3e-7b1e0c4d2a91", Source: "/tributary/erp_orders", SpecVersion: core.SpecVersion,
			Type: "com.example.order.placed", Subject: "A-1001", Time: time.Date(2026, 3, 2, 8, 30, 15, 123456000, time.UTC),
			DataContentType: "application/json", DataSchema: "https://schemas.example.com/order/placed/1",
			Data: []byte(`{"order_id":"A-1001","total":"99.90"}`), PartitionKey: "A-1001",
			TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		},
		{
			ID: "0b3e5c1d-2f4a-5b6c-8d7e-9f0a1b2c3d4e", Source: "/tributary/drops", SpecVersion: core.SpecVersion,
			Type: "com.example.file.received", Time: time.Date(2026, 3, 2, 8, 31, 0, 0, time.UTC),
			DataContentType: "application/octet-stream", Data: []byte{0, 1, 2, 0xff},
		},
	}
	got := search(t, s, audit.Query{Since: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n got %+v\nwant %+v", got, want)
	}
	replays, err := audit.Replays(ctx, s.DB())
	if err != nil {
		t.Fatal(err)
	}
	wantReplay := audit.Replay{
		ID: "r-1", At: time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC), Who: "alice", Sink: "warehouse", Count: 1,
		Filter: audit.Query{Types: []string{"com.example.order.placed"}, Since: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)},
	}
	if len(replays) != 1 || !reflect.DeepEqual(replays[0], wantReplay) {
		t.Errorf("replays = %+v, want %+v", replays, wantReplay)
	}
	write(t, s, deliveries(event(1)))
	if got := search(t, s, audit.Query{Subject: "A-1001"}); len(got) != 1 {
		t.Errorf("subject A-1001: %d events, want 1", len(got))
	}
	if got := search(t, s, audit.Query{ID: event(1).ID}); len(got) != 1 {
		t.Errorf("a new event was not logged beside the old ones")
	}
}

// TestOpenPostgresWithBadCredentialsIsFatal: PostgreSQL refusing the
// password stops the sink (core.ErrFatal) instead of retrying forever.
func TestOpenPostgresWithBadCredentialsIsFatal(t *testing.T) {
	u, err := url.Parse(servicetest.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "WRONG-PASSWORD")
	s := audit.New()
	if err := s.Configure(core.NewConfig("audit_log", map[string]any{"driver": "postgres", "dsn": u.String()})); err != nil {
		t.Fatal(err)
	}
	err = s.Open(context.Background(), core.Env{Name: "audit_log", StateDir: t.TempDir()})
	if !errors.Is(err, core.ErrFatal) {
		t.Errorf("Open with a wrong password = %v; want it fatal", err)
	}
}
