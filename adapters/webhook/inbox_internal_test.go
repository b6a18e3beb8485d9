package webhook

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/core/sinkbench"
	"github.com/tributary/tributary/core/statedb"
)

// BenchmarkInbox measures the inbox alone: concurrent submitters of 1 KB
// deliveries, group-committed with an fsync per transaction, acked as they
// commit.
func BenchmarkInbox(b *testing.B) {
	ib, _, err := openInbox(context.Background(), b.TempDir(), time.Hour, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	ib.onCommit = func(recs []*record) { ib.ack(recs[len(recs)-1].seq) }
	ib.start()
	defer ib.close(context.Background())
	body := make([]byte, 1024)
	meta := recordMeta{Method: "POST", Path: "/hooks/x", ContentType: "application/json",
		Headers: map[string]any{"Content-Type": "application/json", "X-Signature": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "User-Agent": "bench"}}
	var seq atomic.Int64
	b.SetParallelism(128)
	b.SetBytes(1024)
	cpu0 := sinkbench.CPUTime()
	start := time.Now()
	var mu sync.Mutex
	var failed error
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := &record{id: strconv.FormatInt(seq.Add(1), 10), received: time.Now(), meta: meta, body: body}
			if _, err := ib.submit(context.Background(), rec); err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
		}
	})
	if failed != nil {
		b.Fatal(failed)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
	b.ReportMetric(float64(sinkbench.CPUTime()-cpu0)/1e3/float64(b.N), "cpu-us/delivery")
	b.ReportMetric(float64(ib.stored.Load())/float64(max(1, ib.commits.Load())), "deliveries/commit")
}

// TestInboxDuplicatesInOneBatch commits a batch that holds the same
// delivery id twice, and an id an earlier batch stored: only the first copy
// of the new id is stored.
func TestInboxDuplicatesInOneBatch(t *testing.T) {
	ctx := context.Background()
	ib, _, err := openInbox(ctx, t.TempDir(), time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer ib.close(ctx)
	var committed []string
	ib.onCommit = func(recs []*record) {
		for _, r := range recs {
			committed = append(committed, r.id)
		}
	}
	req := func(id string) *writeReq {
		return &writeReq{rec: &record{id: id, received: time.Now(), body: []byte(`{}`)}, done: make(chan struct{}, 1)}
	}
	first := []*writeReq{req("a")}
	ib.commitBatch(first)
	batch := []*writeReq{req("b"), req("a"), req(`b`), req("c \"quoted\""), req("\xff\x00raw"), req("\xff\x00raw")}
	ib.commitBatch(batch)
	var dups []bool
	for _, r := range append(first, batch...) {
		if r.err != nil {
			t.Fatalf("delivery %q: %v", r.rec.id, r.err)
		}
		dups = append(dups, r.dup)
	}
	if want := []bool{false, false, true, true, false, false, true}; !slices.Equal(dups, want) {
		t.Errorf("duplicates = %v, want %v", dups, want)
	}
	if want := []string{"a", "b", "c \"quoted\"", "\xff\x00raw"}; !slices.Equal(committed, want) {
		t.Errorf("stored = %q, want %q", committed, want)
	}
	if seqs := []uint64{batch[0].rec.seq, batch[3].rec.seq}; seqs[0] != 2 || seqs[1] != 3 {
		t.Errorf("sequences = %v, want [2 3]", seqs)
	}
}

func newReq(id string, body []byte) *writeReq {
	return &writeReq{rec: &record{id: id, received: time.Now(), body: body,
		meta: recordMeta{Method: "POST", Path: "/hooks/x", Headers: map[string]any{"X-Id": id}}}, done: make(chan struct{}, 1)}
}

// commitIDs commits one batch of the given ids and fails on any error.
func commitIDs(t *testing.T, ib *inbox, ids ...string) []*writeReq {
	t.Helper()
	var batch []*writeReq
	for _, id := range ids {
		batch = append(batch, newReq(id, []byte(`{"id":"`+id+`"}`)))
	}
	ib.commitBatch(batch)
	ib.maintain()
	for _, r := range batch {
		if r.err != nil {
			t.Fatalf("commit %q: %v", r.rec.id, r.err)
		}
	}
	return batch
}

// loadBacklog reads back every delivery of bl, in order, and checks its
// count and bytes.
func loadBacklog(t *testing.T, ib *inbox, bl backlog) []*record {
	t.Helper()
	var out []*record
	var bytes int64
	for _, run := range bl.runs {
		recs, next, err := ib.rd.read(run, run.count)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != run.count || next != run.end {
			t.Fatalf("run of %d deliveries to offset %d: read %d, to offset %d", run.count, run.end, len(recs), next)
		}
		for _, r := range recs {
			bytes += int64(len(r.body))
		}
		out = append(out, recs...)
	}
	if len(out) != bl.n || bytes != bl.bytes {
		t.Fatalf("backlog of %d deliveries, %d bytes: read %d, %d bytes", bl.n, bl.bytes, len(out), bytes)
	}
	return out
}

func recIDs(recs []*record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.id)
	}
	return out
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	nums, err := listed(filepath.Join(dir, inboxDir), "seg-")
	if err != nil || len(nums) == 0 {
		t.Fatalf("no segment in %s: %v", dir, err)
	}
	return segmentPath(filepath.Join(dir, inboxDir), nums[len(nums)-1])
}

// TestInboxTornTail reopens an inbox whose last segment ends in the bytes
// of a write a crash cut: the deliveries before them are all there, the
// cut one is not, and the inbox keeps storing after them.
func TestInboxTornTail(t *testing.T) {
	tests := []struct {
		name   string
		damage func(path string) error
		want   []string
	}{
		{name: "partial frame header", want: []string{"a", "b"}, damage: func(p string) error {
			return appendFile(p, []byte{42, 0, 0})
		}},
		{name: "zeros after the frames", want: []string{"a", "b"}, damage: func(p string) error {
			return appendFile(p, make([]byte, 4096))
		}},
		{name: "frame cut short", want: []string{"a"}, damage: func(p string) error {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()-3)
		}},
		{name: "frame with a wrong checksum", want: []string{"a"}, damage: func(p string) error {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			data[len(data)-1] ^= 0xff
			return os.WriteFile(p, data, 0o600)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			ib, _, err := openInbox(ctx, dir, time.Hour, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			commitIDs(t, ib, "a")
			commitIDs(t, ib, "b")
			if err := ib.close(ctx); err != nil {
				t.Fatal(err)
			}
			if err := tt.damage(lastSegment(t, dir)); err != nil {
				t.Fatal(err)
			}
			ib, recs, err := openInbox(ctx, dir, time.Hour, time.Now)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			if got := recIDs(loadBacklog(t, ib, recs)); !slices.Equal(got, tt.want) {
				t.Fatalf("stored after reopening = %q, want %q", got, tt.want)
			}
			if r := commitIDs(t, ib, "a", "c"); !r[0].dup || r[1].dup {
				t.Errorf("after reopening: a duplicate %v, c duplicate %v; want true, false", r[0].dup, r[1].dup)
			}
			if err := ib.close(ctx); err != nil {
				t.Fatal(err)
			}
			ib, recs, err = openInbox(ctx, dir, time.Hour, time.Now)
			if err != nil {
				t.Fatalf("second reopen: %v", err)
			}
			defer ib.close(ctx)
			if got, want := recIDs(loadBacklog(t, ib, recs)), append(slices.Clone(tt.want), "c"); !slices.Equal(got, want) {
				t.Fatalf("stored after the second reopen = %q, want %q", got, want)
			}
		})
	}
}

func appendFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// TestInboxSegmentsRollAndCompact fills several small segments, acks half
// the deliveries: the segments they filled are deleted, and after a reopen
// the rest are read again while every id is still a duplicate.
func TestInboxSegmentsRollAndCompact(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ib, _, err := openInbox(ctx, dir, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ib.segmentBytes = 300
	var all []string
	var seqs []uint64
	for i := range 20 {
		id := "d-" + strconv.Itoa(i)
		all = append(all, id)
		seqs = append(seqs, commitIDs(t, ib, id)[0].rec.seq)
	}
	segs := func() int {
		nums, err := listed(filepath.Join(dir, inboxDir), "seg-")
		if err != nil {
			t.Fatal(err)
		}
		return len(nums)
	}
	before := segs()
	if before < 5 {
		t.Fatalf("%d segments after 20 deliveries in 300-byte segments, want several", before)
	}
	ib.ack(seqs[9])
	ib.commitBatch(nil)
	ib.maintain()
	ib.removeWG.Wait() // compacted segments are deleted in the background
	if after := segs(); after >= before {
		t.Errorf("segments after acking half = %d, want fewer than %d", after, before)
	}
	if err := ib.close(ctx); err != nil {
		t.Fatal(err)
	}
	ib, recs, err := openInbox(ctx, dir, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer ib.close(ctx)
	if got := recIDs(loadBacklog(t, ib, recs)); !slices.Equal(got, all[10:]) {
		t.Fatalf("stored after reopening = %q, want %q", got, all[10:])
	}
	for _, r := range commitIDs(t, ib, all...) {
		if !r.dup {
			t.Errorf("%q after reopening: not a duplicate", r.rec.id)
		}
	}
	if r := commitIDs(t, ib, "new"); r[0].dup || r[0].rec.seq != seqs[19]+1 {
		t.Errorf("new delivery: duplicate %v, sequence %d; want false, %d", r[0].dup, r[0].rec.seq, seqs[19]+1)
	}
}

// TestInboxMigratesSQLite opens a state directory holding an earlier
// version's SQLite inbox: its delivery not acknowledged is read, the ids it
// remembers are duplicates, and the database is gone.
func TestInboxMigratesSQLite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := statedb.Open(filepath.Join(dir, legacyInbox), statedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	legacyRecord := func(b []byte, id string, body string) []byte {
		meta := `{"method":"POST","path":"/hooks/x","content_type":"application/json","headers":{"X-Id":"` + id + `"}}`
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
		b = binary.AppendVarint(b, time.Now().UnixNano())
		b = binary.AppendUvarint(b, uint64(len(meta)))
		b = append(b, meta...)
		b = binary.AppendUvarint(b, uint64(len(body)))
		return append(b, body...)
	}
	blob := legacyRecord(legacyRecord(nil, "old-1", `{"n":1}`), "old-2", `{"n":2}`)
	for _, q := range []string{
		`CREATE TABLE inbox_batches (first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, data BLOB NOT NULL)`,
		`CREATE TABLE inbox_state (id INTEGER PRIMARY KEY CHECK (id = 0), acked_seq INTEGER NOT NULL, gen INTEGER NOT NULL, gen_start_ns INTEGER NOT NULL)`,
		`CREATE TABLE seen_0 (delivery_id TEXT PRIMARY KEY) WITHOUT ROWID`,
		`CREATE TABLE seen_1 (delivery_id TEXT PRIMARY KEY) WITHOUT ROWID`,
		`INSERT INTO seen_0 VALUES ('old-0'), ('old-1'), ('old-2')`,
		`INSERT INTO seen_1 VALUES ('older')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO inbox_state VALUES (0, 7, 0, ?)`, time.Now().Add(-time.Minute).UnixNano()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO inbox_batches VALUES (7, 8, ?)`, blob); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	ib, bl, err := openInbox(ctx, dir, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer ib.close(ctx)
	recs := loadBacklog(t, ib, bl)
	if len(recs) != 1 || recs[0].id != "old-2" || recs[0].seq != 8 || string(recs[0].body) != `{"n":2}` || recs[0].meta.Headers["X-Id"] != "old-2" {
		t.Fatalf("migrated deliveries = %+v, want old-2 at sequence 8", recs)
	}
	for _, r := range commitIDs(t, ib, "old-0", "old-1", "old-2", "older") {
		if !r.dup {
			t.Errorf("%q after migrating: not a duplicate", r.rec.id)
		}
	}
	if r := commitIDs(t, ib, "new"); r[0].dup || r[0].rec.seq != 9 {
		t.Errorf("new delivery: duplicate %v, sequence %d; want false, 9", r[0].dup, r[0].rec.seq)
	}
	if _, err := os.Stat(filepath.Join(dir, legacyInbox)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the SQLite inbox is still there after migrating: %v", err)
	}
}

// TestInboxSkipsDamagedFrames damages stored frames: one in the middle of
// a segment, whose deliveries after it are read, and the last one of a
// segment before another, which the next segment's starting sequence
// shows was there. Each is logged with the file and the sequences lost,
// and counted.
func TestInboxSkipsDamagedFrames(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ib, _, err := openInbox(ctx, dir, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	frames := map[string]*record{}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		frames[id] = commitIDs(t, ib, id)[0].rec
	}
	first := ib.active.n
	if err := ib.openSegment(first + 1); err != nil { // as a full segment does
		t.Fatal(err)
	}
	frames["f"] = commitIDs(t, ib, "f")[0].rec
	frames["g"] = commitIDs(t, ib, "g")[0].rec
	if err := ib.close(ctx); err != nil {
		t.Fatal(err)
	}
	damage := func(rec *record) string {
		path := segmentPath(filepath.Join(dir, inboxDir), rec.seg)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte{0xde, 0xad}, rec.at+int64(rec.flen)/2); err != nil {
			t.Fatal(err)
		}
		return path
	}
	mid := damage(frames["c"])  // d and e follow it
	tail := damage(frames["e"]) // the last of its segment; the next starts after it

	var logged bytes.Buffer
	ib, bl, err := openInboxLog(ctx, dir, time.Hour, time.Now, defaultHotLimit, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer ib.close(ctx)
	if got := recIDs(loadBacklog(t, ib, bl)); !slices.Equal(got, []string{"a", "b", "d", "f", "g"}) {
		t.Fatalf("stored after reopening = %q, want a, b, d, f, g", got)
	}
	if len(bl.runs) != 3 {
		t.Errorf("%d runs, want 3: none spans the damaged bytes", len(bl.runs))
	}
	if ib.damaged != 2 {
		t.Errorf("damaged = %d, want 2", ib.damaged)
	}
	log := logged.String()
	for _, want := range []string{
		"damaged bytes in a segment skipped", "file=" + mid, "after_sequence=2", "next_sequence=4",
		"deliveries missing from the end of a segment", "file=" + tail, "first_sequence=5", "last_sequence=5",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	// The damaged ids are forgotten: a sender's retry is taken again.
	if r := commitIDs(t, ib, "c", "e", "a"); r[0].dup || r[1].dup || !r[2].dup {
		t.Errorf("after reopening: c duplicate %v, e %v, a %v; want false, false, true", r[0].dup, r[1].dup, r[2].dup)
	}
}

// FuzzScanFrames damages a segment of valid frames at a place and with
// bytes the fuzzer chooses: scanning never fails or panics, every frame
// it reports is valid where it says, frames come in order without
// overlapping, and each valid frame after the damaged bytes is still
// found.
func FuzzScanFrames(f *testing.F) {
	f.Add(uint16(30), []byte{0xff, 0x00, 0x13})
	f.Add(uint16(0), []byte{})
	f.Add(uint16(200), make([]byte, 40))
	f.Fuzz(func(t *testing.T, at uint16, junk []byte) {
		var seg []byte
		var starts []int
		for i := range 8 {
			starts = append(starts, len(seg))
			r := &record{seq: uint64(i + 1), id: "id-" + strconv.Itoa(i), received: time.Unix(0, int64(i)), body: []byte(`{"n":` + strconv.Itoa(i) + `}`)}
			r.head = appendRecordHead(nil, r)
			seg = appendDelivery(seg, r)
			seg = appendState(seg, uint64(i), uint64(i+1))
		}
		end := len(seg)
		seg = append(seg, make([]byte, 64)...) // a preallocated file's zeros
		pos := int(at) % (end + 1)
		copy(seg[pos:], junk)
		last := -1
		found := map[int]bool{}
		if _, err := scanFrames(seg, func(off int64, p []byte, _ *skipped) error {
			o := int(off)
			if o <= last {
				t.Fatalf("frame at %d after one at %d", o, last)
			}
			q, _, ok := nextFrame(seg[o:])
			if !ok || len(q) != len(p) {
				t.Fatalf("frame reported at %d is not valid there", o)
			}
			last = o + frameHeader + len(p) - 1
			found[o] = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, s := range starts {
			if s >= pos+len(junk) {
				if _, _, ok := nextFrame(seg[s:]); ok && !found[s] {
					t.Fatalf("valid frame at %d after the damage (%d bytes at %d) not found", s, len(junk), pos)
				}
			}
		}
	})
}
