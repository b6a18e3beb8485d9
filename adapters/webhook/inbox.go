package webhook

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/core/statedb"
)

// ErrClosed is returned by a source or inbox that has been closed.
var ErrClosed = errors.New("webhook source closed")

// ackDelay is the longest an ack waits to be applied when no delivery
// arrives to carry it.
const ackDelay = 200 * time.Millisecond

// maxBatch and maxBatchBytes bound how many deliveries, and how many body
// bytes, one inbox transaction commits (a batch is one SQLite blob, which
// must stay well below SQLite's 1 GB limit).
const (
	maxBatch      = 1024
	maxBatchBytes = 16 << 20
)

// record is one delivery as the inbox keeps it.
type record struct {
	seq      uint64
	id       string
	received time.Time
	meta     recordMeta
	// metaJSON is meta encoded for storage, filled by the submitter so
	// that the single writer does not spend its time encoding.
	metaJSON []byte
	body     []byte
	// payload is the parsed body when the handler already parsed it.
	payload any
	parsed  bool
}

// recordMeta is the request detail stored beside the body.
type recordMeta struct {
	Method      string            `json:"method"`
	Path        string            `json:"path"`
	RemoteAddr  string            `json:"remote_addr,omitempty"`
	ContentType string            `json:"content_type,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Query       map[string]string `json:"query,omitempty"`
	PathParams  map[string]string `json:"path_params,omitempty"`
}

// writeReq is one delivery waiting for the writer.
type writeReq struct {
	rec  *record
	dup  bool
	err  error
	done chan struct{}
}

// inbox is the durable, deduplicating queue between the HTTP handler and
// the source's Read. One writer goroutine commits many deliveries per
// transaction (group commit), so that one fsync covers them all.
//
// Storage: each transaction's accepted deliveries form one row of
// inbox_batches (sequence range and a framed blob), so that a delivery costs
// no B-tree insert of its own. inbox_state keeps the sequence acknowledged
// so far (deliveries at or below it are never read again) and the dedup
// generation. Delivery ids live in two generation tables, seen_0 and
// seen_1: an id is a duplicate when either holds it; new ids go to the
// current one; when the current generation is one window old, the other
// table is emptied and becomes current. An id is thus remembered for at
// least one window and at most two, without a time index to maintain.
type inbox struct {
	wdb    *sql.DB // the single writer connection
	conn   *sql.Conn
	stmts  inboxStmts
	window time.Duration
	now    func() time.Time

	// onCommit receives the records of each committed transaction that
	// were not duplicates, in sequence order, from the writer goroutine.
	onCommit func([]*record)

	reqs    chan *writeReq
	ackTo   atomic.Uint64
	quit    chan struct{}
	stopped chan struct{}
	quitMu  sync.Once
	running bool

	// commits and stored count transactions and the deliveries they
	// stored, for status.
	commits atomic.Int64
	stored  atomic.Int64

	// Writer-only state.
	nextSeq  uint64
	deleted  uint64 // acked sequence persisted in inbox_state
	gen      int    // current seen generation, 0 or 1
	genStart time.Time
	buf      []byte
	idsBuf   []byte
}

type inboxStmts struct {
	begin, commit, rollback *sql.Stmt
	dedup                   [2]*sql.Stmt // indexed by the current generation
	clear                   [2]*sql.Stmt // empties seen_N
	insert, del, state      *sql.Stmt
}

const inboxSchema = `
CREATE TABLE IF NOT EXISTS inbox_batches (
	first_seq INTEGER PRIMARY KEY,
	last_seq  INTEGER NOT NULL,
	data      BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox_state (
	id           INTEGER PRIMARY KEY CHECK (id = 0),
	acked_seq    INTEGER NOT NULL,
	gen          INTEGER NOT NULL,
	gen_start_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_0 (delivery_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen_1 (delivery_id TEXT PRIMARY KEY) WITHOUT ROWID;
`

// dedupSQL records the delivery ids of a JSON array (?1) of hex strings in
// the current generation table cur, skipping those either generation
// already holds, and returns the ids it recorded: one statement per batch
// rather than one per delivery. Hex keeps ids that are not valid UTF-8
// byte for byte, as they are stored as text.
func dedupSQL(cur, other string) string {
	return `INSERT INTO ` + cur + ` (delivery_id)
		SELECT d.id FROM (SELECT CAST(unhex(value) AS TEXT) AS id FROM json_each(?1)) AS d
		WHERE NOT EXISTS (SELECT 1 FROM ` + other + ` AS o WHERE o.delivery_id = d.id)
		ON CONFLICT DO NOTHING RETURNING delivery_id`
}

// openInbox opens (creating when missing) the inbox database in dir and
// returns the deliveries it holds that were not acknowledged, in order. It
// does not start the writer: call start once onCommit is set.
func openInbox(ctx context.Context, dir string, window time.Duration, now func() time.Time) (*inbox, []*record, error) {
	path := filepath.Join(dir, "webhook-inbox.db")
	ib := &inbox{
		window:  window,
		now:     now,
		reqs:    make(chan *writeReq, 4*maxBatch),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	fail := func(err error) (*inbox, []*record, error) {
		ib.closeDBs()
		return nil, nil, fmt.Errorf("open webhook inbox %s: %w", path, err)
	}
	var err error
	if ib.wdb, err = statedb.Open(path, statedb.Options{}); err != nil {
		return fail(err)
	}
	ib.wdb.SetMaxOpenConns(1)
	if ib.conn, err = ib.wdb.Conn(ctx); err != nil {
		return fail(err)
	}
	if _, err = ib.conn.ExecContext(ctx, inboxSchema); err != nil {
		return fail(err)
	}
	var genStart int64
	err = ib.conn.QueryRowContext(ctx, `SELECT acked_seq, gen, gen_start_ns FROM inbox_state WHERE id = 0`).Scan(&ib.deleted, &ib.gen, &genStart)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		ib.genStart = now()
		if _, err = ib.conn.ExecContext(ctx, `INSERT INTO inbox_state (id, acked_seq, gen, gen_start_ns) VALUES (0, 0, 0, ?)`, ib.genStart.UnixNano()); err != nil {
			return fail(err)
		}
	case err != nil:
		return fail(err)
	default:
		ib.genStart = time.Unix(0, genStart)
		ib.gen &= 1
	}
	prep := func(dst **sql.Stmt, query string) {
		if err != nil {
			return
		}
		*dst, err = ib.conn.PrepareContext(ctx, query)
	}
	prep(&ib.stmts.begin, `BEGIN IMMEDIATE`)
	prep(&ib.stmts.commit, `COMMIT`)
	prep(&ib.stmts.rollback, `ROLLBACK`)
	prep(&ib.stmts.dedup[0], dedupSQL("seen_0", "seen_1"))
	prep(&ib.stmts.dedup[1], dedupSQL("seen_1", "seen_0"))
	prep(&ib.stmts.clear[0], `DELETE FROM seen_0`)
	prep(&ib.stmts.clear[1], `DELETE FROM seen_1`)
	prep(&ib.stmts.insert, `INSERT INTO inbox_batches (first_seq, last_seq, data) VALUES (?, ?, ?)`)
	prep(&ib.stmts.del, `DELETE FROM inbox_batches WHERE first_seq <= ?1 AND last_seq <= ?1`)
	prep(&ib.stmts.state, `UPDATE inbox_state SET acked_seq = ?, gen = ?, gen_start_ns = ? WHERE id = 0`)
	if err != nil {
		return fail(err)
	}
	recs, err := ib.load(ctx)
	if err != nil {
		return fail(err)
	}
	return ib, recs, nil
}

// load returns the stored deliveries not yet acknowledged and sets nextSeq.
func (ib *inbox) load(ctx context.Context) ([]*record, error) {
	ib.nextSeq = ib.deleted
	rows, err := ib.conn.QueryContext(ctx, `SELECT first_seq, last_seq, data FROM inbox_batches WHERE last_seq > ? ORDER BY first_seq`, int64(ib.deleted))
	if err != nil {
		return nil, fmt.Errorf("read stored deliveries: %w", err)
	}
	defer rows.Close()
	var out []*record
	for rows.Next() {
		var (
			first, last int64
			data        []byte
		)
		if err := rows.Scan(&first, &last, &data); err != nil {
			return nil, fmt.Errorf("read stored deliveries: %w", err)
		}
		recs, err := decodeBatch(uint64(first), data)
		if err != nil {
			return nil, fmt.Errorf("decode stored batch at sequence %d: %w", first, err)
		}
		if len(recs) == 0 || recs[len(recs)-1].seq != uint64(last) {
			return nil, fmt.Errorf("decode stored batch at sequence %d: holds %d deliveries, want %d", first, len(recs), last-first+1)
		}
		for _, r := range recs {
			if r.seq > ib.deleted {
				out = append(out, r)
			}
		}
		ib.nextSeq = max(ib.nextSeq, uint64(last))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stored deliveries: %w", err)
	}
	return out, nil
}

// appendRecord frames r for a batch blob: id, received time, meta, body.
func appendRecord(b []byte, r *record) []byte {
	b = binary.AppendUvarint(b, uint64(len(r.id)))
	b = append(b, r.id...)
	b = binary.AppendVarint(b, r.received.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(r.metaJSON)))
	b = append(b, r.metaJSON...)
	b = binary.AppendUvarint(b, uint64(len(r.body)))
	return append(b, r.body...)
}

// decodeBatch reads the records of a batch blob; the first has sequence
// first and the others follow.
func decodeBatch(first uint64, data []byte) ([]*record, error) {
	var out []*record
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return nil, errors.New("truncated field")
		}
		f := data[k : k+int(n)]
		data = data[k+int(n):]
		return f, nil
	}
	for seq := first; len(data) > 0; seq++ {
		id, err := field()
		if err != nil {
			return nil, err
		}
		ns, k := binary.Varint(data)
		if k <= 0 {
			return nil, errors.New("truncated time")
		}
		data = data[k:]
		meta, err := field()
		if err != nil {
			return nil, err
		}
		body, err := field()
		if err != nil {
			return nil, err
		}
		r := &record{seq: seq, id: string(id), received: time.Unix(0, ns).UTC(), metaJSON: meta, body: body}
		if err := json.Unmarshal(meta, &r.meta); err != nil {
			return nil, fmt.Errorf("delivery %q: %w", r.id, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// forget marks the deliveries up to and including the one holding
// delivery id as acknowledged: the stream already holds them (a checkpoint
// says so) though their ack did not reach the inbox before a stop. recs
// are the stored deliveries; forget returns those that remain. It is called
// before start.
func (ib *inbox) forget(ctx context.Context, recs []*record, id string) ([]*record, error) {
	for i, r := range recs {
		if r.id != id {
			continue
		}
		if _, err := ib.conn.ExecContext(ctx, `UPDATE inbox_state SET acked_seq = ? WHERE id = 0`, int64(r.seq)); err != nil {
			return nil, fmt.Errorf("forget checkpointed deliveries through %q: %w", id, err)
		}
		ib.deleted = r.seq
		ib.ackTo.Store(r.seq)
		return recs[i+1:], nil
	}
	return recs, nil
}

// start runs the writer goroutine.
func (ib *inbox) start() {
	ib.running = true
	go ib.run()
}

// submit stores rec durably (or finds it a duplicate) and returns once the
// transaction holding it committed. It is safe for concurrent use.
func (ib *inbox) submit(ctx context.Context, rec *record) (dup bool, err error) {
	if rec.metaJSON == nil {
		if rec.metaJSON, err = json.Marshal(&rec.meta); err != nil {
			return false, fmt.Errorf("encode delivery %q: %w", rec.id, err)
		}
	}
	req := &writeReq{rec: rec, done: make(chan struct{})}
	select {
	case <-ib.quit:
		return false, ErrClosed
	default:
	}
	select {
	case ib.reqs <- req:
	case <-ib.quit:
		return false, ErrClosed
	case <-ctx.Done():
		return false, ctx.Err()
	}
	select {
	case <-req.done:
		return req.dup, req.err
	case <-ib.stopped:
		select {
		case <-req.done:
			return req.dup, req.err
		default:
			return false, ErrClosed
		}
	}
}

// ack asks the writer to forget every delivery up to seq, in its next
// transaction. It does not wait.
func (ib *inbox) ack(seq uint64) {
	for {
		cur := ib.ackTo.Load()
		if seq <= cur || ib.ackTo.CompareAndSwap(cur, seq) {
			return
		}
	}
}

func (ib *inbox) run() {
	defer close(ib.stopped)
	batch := make([]*writeReq, 0, maxBatch)
	// Acks ride along with the next deliveries' transaction; when none
	// come, the ticker applies them, so that an ack never costs an fsync
	// of its own under load.
	tick := time.NewTicker(ackDelay)
	defer tick.Stop()
	var next *writeReq // taken from the queue but left for the next batch
	for {
		batch = batch[:0]
		size := 0
		if next != nil {
			batch, size, next = append(batch, next), len(next.rec.body), nil
		} else {
			select {
			case r := <-ib.reqs:
				batch, size = append(batch, r), len(r.rec.body)
			case <-tick.C:
			case <-ib.quit:
				ib.drain()
				return
			}
		}
		ib.coalesce()
	fill:
		for len(batch) < maxBatch && size < maxBatchBytes {
			select {
			case r := <-ib.reqs:
				if size+len(r.rec.body) > maxBatchBytes {
					next = r
					break fill
				}
				batch, size = append(batch, r), size+len(r.rec.body)
			default:
				break fill
			}
		}
		ib.commitBatch(batch)
	}
}

// coalesceYields bounds how many times the writer yields before a commit.
const coalesceYields = 4

// coalesce lets the handlers that are about to submit a delivery do so
// before the writer takes its batch. Under load the cores are busy with
// requests (verification, parsing), so deliveries reach the queue a few at a
// time; yielding while the queue still grows lets one commit, and one fsync,
// carry them all instead of one small commit per wake-up. When the queue
// stops growing (an idle sidecar: at once) the writer commits.
func (ib *inbox) coalesce() {
	for range coalesceYields {
		n := len(ib.reqs)
		if n >= maxBatch {
			return
		}
		runtime.Gosched()
		if len(ib.reqs) == n {
			return
		}
	}
}

// drain fails every request still queued when the inbox stops. A final
// pending ack is applied so that a clean stop replays as little as possible.
func (ib *inbox) drain() {
	for {
		select {
		case r := <-ib.reqs:
			r.err = ErrClosed
			close(r.done)
		default:
			if ib.ackTo.Load() > ib.deleted {
				ib.commitBatch(nil)
			}
			return
		}
	}
}

func (ib *inbox) commitBatch(batch []*writeReq) {
	ctx := context.Background()
	now := ib.now()
	ack := ib.ackTo.Load()
	rotate := now.Sub(ib.genStart) >= ib.window
	if len(batch) == 0 && ack <= ib.deleted && !rotate {
		return
	}
	gen, genStart := ib.gen, ib.genStart
	if rotate {
		gen, genStart = 1-gen, now
	}
	startSeq := ib.nextSeq
	accepted := make([]*record, 0, len(batch))
	ib.buf = ib.buf[:0]
	err := ib.txn(ctx, func() error {
		if rotate {
			if _, err := ib.stmts.clear[gen].ExecContext(ctx); err != nil {
				return fmt.Errorf("forget delivery ids older than %s: %w", ib.window, err)
			}
		}
		fresh, err := ib.record(ctx, gen, batch)
		if err != nil {
			return err
		}
		for _, r := range batch {
			if _, ok := fresh[r.rec.id]; !ok {
				r.dup = true
				continue
			}
			// A second copy in the same batch is a duplicate of the first.
			delete(fresh, r.rec.id)
			ib.nextSeq++
			r.rec.seq = ib.nextSeq
			ib.buf = appendRecord(ib.buf, r.rec)
			accepted = append(accepted, r.rec)
		}
		if len(accepted) > 0 {
			if _, err := ib.stmts.insert.ExecContext(ctx, int64(startSeq+1), int64(ib.nextSeq), ib.buf); err != nil {
				return fmt.Errorf("store %d deliveries: %w", len(accepted), err)
			}
		}
		if ack > ib.deleted {
			if _, err := ib.stmts.del.ExecContext(ctx, int64(ack)); err != nil {
				return fmt.Errorf("delete acked deliveries through sequence %d: %w", ack, err)
			}
		}
		if ack > ib.deleted || rotate {
			if _, err := ib.stmts.state.ExecContext(ctx, int64(max(ack, ib.deleted)), gen, genStart.UnixNano()); err != nil {
				return fmt.Errorf("store inbox state: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		ib.nextSeq = startSeq
		for _, r := range batch {
			r.dup = false
			r.err = err
			close(r.done)
		}
		return
	}
	ib.commits.Add(1)
	ib.stored.Add(int64(len(accepted)))
	ib.deleted = max(ack, ib.deleted)
	ib.gen, ib.genStart = gen, genStart
	if len(accepted) > 0 && ib.onCommit != nil {
		ib.onCommit(accepted)
	}
	for _, r := range batch {
		close(r.done)
	}
}

// record stores the delivery ids of batch in generation gen and returns
// those that were new (each once, however many copies batch holds).
func (ib *inbox) record(ctx context.Context, gen int, batch []*writeReq) (map[string]struct{}, error) {
	fresh := make(map[string]struct{}, len(batch))
	if len(batch) == 0 {
		return fresh, nil
	}
	ids := ib.idsBuf[:0]
	ids = append(ids, '[')
	for i, r := range batch {
		if i > 0 {
			ids = append(ids, ',')
		}
		ids = append(ids, '"')
		ids = hex.AppendEncode(ids, []byte(r.rec.id))
		ids = append(ids, '"')
	}
	ids = append(ids, ']')
	ib.idsBuf = ids
	rows, err := ib.stmts.dedup[gen].QueryContext(ctx, string(ids))
	if err != nil {
		return nil, fmt.Errorf("record %d delivery ids: %w", len(batch), err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("record %d delivery ids: %w", len(batch), err)
		}
		fresh[id] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("record %d delivery ids: %w", len(batch), err)
	}
	return fresh, nil
}

func (ib *inbox) txn(ctx context.Context, f func() error) error {
	if _, err := ib.stmts.begin.ExecContext(ctx); err != nil {
		return fmt.Errorf("begin inbox transaction: %w", err)
	}
	if err := f(); err != nil {
		_, _ = ib.stmts.rollback.ExecContext(ctx)
		return err
	}
	if _, err := ib.stmts.commit.ExecContext(ctx); err != nil {
		_, _ = ib.stmts.rollback.ExecContext(ctx)
		return fmt.Errorf("commit inbox transaction: %w", err)
	}
	return nil
}

// close stops the writer (bounded by ctx) and closes the database.
func (ib *inbox) close(ctx context.Context) error {
	ib.quitMu.Do(func() { close(ib.quit) })
	if ib.running {
		select {
		case <-ib.stopped:
		case <-ctx.Done():
			// The writer is inside a transaction (a slow disk): let it
			// finish, then release the database.
			go func() {
				<-ib.stopped
				_ = ib.closeDBs()
			}()
			return fmt.Errorf("stop webhook inbox writer: %w", ctx.Err())
		}
	}
	return ib.closeDBs()
}

func (ib *inbox) closeDBs() error {
	var errs []error
	if ib.conn != nil {
		errs = append(errs, ib.conn.Close())
		ib.conn = nil
	}
	if ib.wdb != nil {
		errs = append(errs, ib.wdb.Close())
		ib.wdb = nil
	}
	return errors.Join(errs...)
}
