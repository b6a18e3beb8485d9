package embedded_test

import (
	"context"
	"database/sql"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/core"
)

// v1Schema is the schema version 1 files have, as version 1 wrote it.
var v1Schema = []string{
	`PRAGMA page_size = 16384`,
	`PRAGMA journal_mode = WAL`,
	`CREATE TABLE messages (
		"offset"     INTEGER PRIMARY KEY AUTOINCREMENT,
		topic        TEXT    NOT NULL,
		uuid         TEXT    NOT NULL,
		key          TEXT    NOT NULL DEFAULT '',
		metadata     BLOB,
		payload      BLOB,
		published_at INTEGER NOT NULL
	)`,
	`CREATE INDEX messages_topic_offset ON messages (topic, "offset")`,
	`CREATE INDEX messages_published_at ON messages (published_at)`,
	`CREATE TABLE consumer_offsets (
		"group"  TEXT    NOT NULL,
		topic    TEXT    NOT NULL,
		"offset" INTEGER NOT NULL,
		PRIMARY KEY ("group", topic)
	) WITHOUT ROWID`,
	`CREATE TABLE consumer_leases (
		"group"    TEXT    NOT NULL,
		topic      TEXT    NOT NULL,
		owner      TEXT    NOT NULL,
		expires_at INTEGER NOT NULL,
		PRIMARY KEY ("group", topic)
	) WITHOUT ROWID`,
	`CREATE TABLE checkpoints (
		connector  TEXT NOT NULL PRIMARY KEY,
		checkpoint TEXT NOT NULL
	) WITHOUT ROWID`,
	`PRAGMA user_version = 1`,
}

// v1Message is a row of a version 1 messages table.
type v1Message struct {
	offset   int64
	topic    string
	uuid     string
	metadata any // JSON text, or nil
	payload  []byte
	at       time.Time
}

// writeV1File builds a version 1 stream file holding msgs, then deletes
// the messages at offsets pruned, as version 1 retention did.
func writeV1File(t *testing.T, file string, msgs []v1Message, pruned []int64, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range v1Schema {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for _, m := range msgs {
		if _, err := db.Exec(`INSERT INTO messages ("offset", topic, uuid, key, metadata, payload, published_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			m.offset, m.topic, m.uuid, "", m.metadata, m.payload, m.at.UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	for _, off := range pruned {
		if _, err := db.Exec(`DELETE FROM messages WHERE "offset" = ?`, off); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestMigrateV1(t *testing.T) {
	dir := t.TempDir()
	t1 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	t2, t3 := t1.Add(time.Second), t1.Add(2*time.Second)
	// Transactions of version 1 interleave topics in the offset
	// sequence; the last ones were pruned, so the sequence runs ahead of
	// the rows.
	msgs := []v1Message{
		{offset: 1, topic: "orders", uuid: "o1", metadata: `{"ce_partitionkey":"order-1","q":"say \"hi\"\n"}`, payload: []byte("one"), at: t1},
		{offset: 2, topic: "other", uuid: "x1", metadata: nil, payload: []byte("x"), at: t1},
		{offset: 3, topic: "orders", uuid: "o2", metadata: `{}`, payload: nil, at: t1},
		{offset: 4, topic: "orders", uuid: "o3", metadata: `{"ünï":"✓"}`, payload: []byte{0, 255}, at: t2},
		{offset: 5, topic: "other", uuid: "x2", metadata: nil, payload: []byte("y"), at: t2},
		{offset: 6, topic: "orders", uuid: "o4", metadata: nil, payload: []byte("four"), at: t3},
		{offset: 7, topic: "orders", uuid: "gone", metadata: nil, payload: nil, at: t3},
	}
	writeV1File(t, dbFile(dir), msgs, []int64{7},
		`INSERT INTO consumer_offsets ("group", topic, "offset") VALUES ('billing', 'orders', 3)`,
		`INSERT INTO checkpoints (connector, checkpoint) VALUES ('legacy_orders', '{"format":1,"connector":"legacy_orders","position":{"v":1,"d":"Y3Vyc29yLTc="},"time":"2024-05-01T10:00:00Z"}')`)

	s := openStream(t, dir, nil)
	t.Run("messages", func(t *testing.T) {
		sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ch, err := sub.Subscribe(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			uuid    string
			md      map[string]string
			payload string
		}{
			{"o1", map[string]string{"ce_partitionkey": "order-1", "q": "say \"hi\"\n"}, "one"},
			{"o2", map[string]string{}, ""},
			{"o3", map[string]string{"ünï": "✓"}, "\x00\xff"},
			{"o4", map[string]string{}, "four"},
		}
		for _, w := range want {
			m := <-ch
			m.Ack()
			if pos := m.Metadata[core.MetadataPosition]; !strings.HasPrefix(pos, "orders/0/") {
				t.Errorf("message %s: position = %q, want orders/0/<offset>", m.UUID, pos)
			}
			delete(m.Metadata, core.MetadataPosition)
			if m.UUID != w.uuid || string(m.Payload) != w.payload || !reflect.DeepEqual(map[string]string(m.Metadata), w.md) {
				t.Errorf("got %s %q %q, want %s %q %q", m.UUID, m.Payload, m.Metadata, w.uuid, w.payload, w.md)
			}
		}
	})
	t.Run("group resumes after its offset", func(t *testing.T) {
		got := receive(t, s, core.SubscribeOptions{Group: "billing", From: core.FromBeginning}, "orders", 2)
		if want := []string{"o3", "o4"}; !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("from time", func(t *testing.T) {
		got := receive(t, s, core.SubscribeOptions{From: core.FromTime, Since: t2}, "other", 1)
		if want := []string{"x2"}; !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("checkpoint", func(t *testing.T) {
		cp, ok, err := s.Checkpoints().Load(context.Background(), "legacy_orders")
		if err != nil || !ok || string(cp.Position.Data) != "cursor-7" {
			t.Errorf("checkpoint = %+v, %v, %v", cp, ok, err)
		}
	})
	t.Run("offsets continue the sequence", func(t *testing.T) {
		publish(t, s, "orders", "o5")
		got := receive(t, s, core.SubscribeOptions{Group: "billing", From: core.FromBeginning}, "orders", 1)
		if got[0] != "o5" {
			t.Errorf("group read %v after the new message, want o5", got)
		}
		db := openDB(t, dir)
		var first int64
		if err := db.QueryRow(`SELECT MAX(first_offset) FROM batches`).Scan(&first); err != nil {
			t.Fatal(err)
		}
		if first != 8 {
			t.Errorf("new message has offset %d, want 8 (after the pruned 7)", first)
		}
		var version, tables int
		if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'messages'`).Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if version != 3 || tables != 0 {
			t.Errorf("after migration: user_version %d, messages tables %d; want 3, 0", version, tables)
		}
	})
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Opening again finds version 3 and keeps everything.
	s = openStream(t, dir, nil)
	got := receive(t, s, core.SubscribeOptions{From: core.FromBeginning}, "orders", 5)
	if want := []string{"o1", "o2", "o3", "o4", "o5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after reopening got %v, want %v", got, want)
	}
}

// TestMigrateV1FailureLeavesFile checks that a version 1 file that cannot
// be migrated is left as it was, and the error names the file.
func TestMigrateV1FailureLeavesFile(t *testing.T) {
	dir := t.TempDir()
	writeV1File(t, dbFile(dir), []v1Message{
		{offset: 1, topic: "orders", uuid: "o1", payload: []byte("one"), at: time.Now()},
		{offset: 2, topic: "orders", uuid: "o2", metadata: `{"broken":`, at: time.Now()},
	}, nil)
	s := embedded.New()
	if err := s.Configure(core.NewConfig("stream", nil)); err != nil {
		t.Fatal(err)
	}
	err := s.Open(context.Background(), core.Env{StateDir: dir})
	if err == nil {
		t.Fatal("open: want an error")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), dbFile(dir)) || !strings.Contains(err.Error(), "offset 2") {
		t.Errorf("error %q does not name the file and the message", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, dir)
	var version, rows int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM messages`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if version != 1 || rows != 2 {
		t.Errorf("after the failed migration: user_version %d, %d messages; want 1, 2", version, rows)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	s := openStream(t, dir, nil)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, dir)
	if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	s = embedded.New()
	if err := s.Configure(core.NewConfig("stream", nil)); err != nil {
		t.Fatal(err)
	}
	err := s.Open(context.Background(), core.Env{StateDir: dir})
	if err == nil {
		t.Fatal("open: want an error")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{dbFile(dir), "99", "upgrade tributary"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// openDB opens the stream file of dir directly, and closes it when the
// test ends.
func openDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dbFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
