package webhook

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the pure Go SQLite driver behind the inbox
)

// ErrClosed is returned by a source or inbox that has been closed.
var ErrClosed = errors.New("webhook source closed")

// ackDelay is the longest an ack waits to be applied when no delivery
// arrives to carry it.
const ackDelay = 200 * time.Millisecond

// maxBatch bounds how many deliveries one inbox transaction commits.
const maxBatch = 1024

// pruneEvery is how often the inbox forgets delivery ids older than the
// dedup window, and pruneLimit how many it forgets per transaction so that
// pruning never stalls deliveries for long.
const (
	pruneEvery = time.Minute
	pruneLimit = 5000
)

// record is one delivery as the inbox keeps it.
type record struct {
	seq      uint64
	id       string
	received time.Time
	meta     recordMeta
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

// inboxStats are the inbox's contents when it was opened.
type inboxStats struct {
	count   int64
	bytes   int64
	lastSeq uint64
}

// inbox is the durable, deduplicating queue between the HTTP handler and
// the source's Read. One writer goroutine commits many deliveries per
// transaction (group commit), so that one fsync covers them all.
type inbox struct {
	wdb    *sql.DB // the single writer connection
	rdb    *sql.DB // readers
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
	nextSeq   uint64
	deleted   uint64
	lastPrune time.Time
	pruneMore bool
}

type inboxStmts struct {
	begin, commit, rollback *sql.Stmt
	seen, insert, del       *sql.Stmt
	prune                   *sql.Stmt
}

const inboxSchema = `
CREATE TABLE IF NOT EXISTS inbox (
	seq         INTEGER PRIMARY KEY,
	delivery_id TEXT    NOT NULL,
	received_ns INTEGER NOT NULL,
	meta        BLOB    NOT NULL,
	body        BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
	delivery_id TEXT    PRIMARY KEY,
	seen_ns     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_time ON seen (seen_ns);
`

// openInbox opens (creating when missing) the inbox database in dir. It
// does not start the writer: call start once onCommit is set.
func openInbox(ctx context.Context, dir string, window time.Duration, now func() time.Time) (*inbox, inboxStats, error) {
	path := filepath.Join(dir, "webhook-inbox.db")
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(OFF)")
	dsn := "file:" + path + "?" + q.Encode()
	ib := &inbox{
		window:  window,
		now:     now,
		reqs:    make(chan *writeReq, 4*maxBatch),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	fail := func(err error) (*inbox, inboxStats, error) {
		ib.closeDBs()
		return nil, inboxStats{}, fmt.Errorf("open webhook inbox %s: %w", path, err)
	}
	var err error
	if ib.wdb, err = sql.Open("sqlite", dsn); err != nil {
		return fail(err)
	}
	ib.wdb.SetMaxOpenConns(1)
	if ib.conn, err = ib.wdb.Conn(ctx); err != nil {
		return fail(err)
	}
	if _, err = ib.conn.ExecContext(ctx, inboxSchema); err != nil {
		return fail(err)
	}
	if ib.rdb, err = sql.Open("sqlite", dsn+"&_pragma=query_only(1)"); err != nil {
		return fail(err)
	}
	ib.rdb.SetMaxOpenConns(2)
	prep := func(dst **sql.Stmt, query string) {
		if err != nil {
			return
		}
		*dst, err = ib.conn.PrepareContext(ctx, query)
	}
	prep(&ib.stmts.begin, `BEGIN IMMEDIATE`)
	prep(&ib.stmts.commit, `COMMIT`)
	prep(&ib.stmts.rollback, `ROLLBACK`)
	prep(&ib.stmts.seen, `INSERT INTO seen (delivery_id, seen_ns) VALUES (?1, ?2)
		ON CONFLICT (delivery_id) DO UPDATE SET seen_ns = excluded.seen_ns WHERE seen.seen_ns < ?3`)
	prep(&ib.stmts.insert, `INSERT INTO inbox (seq, delivery_id, received_ns, meta, body) VALUES (?, ?, ?, ?, ?)`)
	prep(&ib.stmts.del, `DELETE FROM inbox WHERE seq <= ?`)
	prep(&ib.stmts.prune, `DELETE FROM seen WHERE delivery_id IN
		(SELECT delivery_id FROM seen WHERE seen_ns < ? ORDER BY seen_ns LIMIT ?)`)
	if err != nil {
		return fail(err)
	}
	var st inboxStats
	row := ib.conn.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0), COALESCE(MAX(seq), 0) FROM inbox`)
	if err = row.Scan(&st.count, &st.bytes, &st.lastSeq); err != nil {
		return fail(err)
	}
	ib.nextSeq = st.lastSeq
	return ib, st, nil
}

// forgetThrough deletes the rows up to and including the one holding
// delivery id: the stream already holds them (a checkpoint says so) though
// their ack did not reach the inbox before a stop. It reports how many rows
// and bytes it removed. It is called before start.
func (ib *inbox) forgetThrough(ctx context.Context, id string) (int64, int64, error) {
	var seq uint64
	err := ib.conn.QueryRowContext(ctx, `SELECT seq FROM inbox WHERE delivery_id = ? ORDER BY seq LIMIT 1`, id).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("find checkpointed delivery %q in the inbox: %w", id, err)
	}
	var n, b int64
	if err := ib.conn.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM inbox WHERE seq <= ?`, seq).Scan(&n, &b); err != nil {
		return 0, 0, fmt.Errorf("count checkpointed deliveries: %w", err)
	}
	if _, err := ib.conn.ExecContext(ctx, `DELETE FROM inbox WHERE seq <= ?`, seq); err != nil {
		return 0, 0, fmt.Errorf("forget checkpointed deliveries through %q: %w", id, err)
	}
	ib.deleted = seq
	return n, b, nil
}

// start runs the writer goroutine.
func (ib *inbox) start() {
	ib.lastPrune = ib.now()
	ib.running = true
	go ib.run()
}

// submit stores rec durably (or finds it a duplicate) and returns once the
// transaction holding it committed. It is safe for concurrent use.
func (ib *inbox) submit(ctx context.Context, rec *record) (dup bool, err error) {
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

// ack asks the writer to delete every row up to seq, in its next
// transaction. It does not wait.
func (ib *inbox) ack(seq uint64) {
	for {
		cur := ib.ackTo.Load()
		if seq <= cur || ib.ackTo.CompareAndSwap(cur, seq) {
			break
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
	for {
		batch = batch[:0]
		select {
		case r := <-ib.reqs:
			batch = append(batch, r)
		case <-tick.C:
		case <-ib.quit:
			ib.drain()
			return
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-ib.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		ib.commitBatch(batch)
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
	prune := ib.pruneMore || now.Sub(ib.lastPrune) >= pruneEvery
	if len(batch) == 0 && ack <= ib.deleted && !prune {
		return
	}
	startSeq := ib.nextSeq
	accepted := make([]*record, 0, len(batch))
	err := ib.txn(ctx, func() error {
		cutoff := now.Add(-ib.window).UnixNano()
		for _, r := range batch {
			res, err := ib.stmts.seen.ExecContext(ctx, r.rec.id, now.UnixNano(), cutoff)
			if err != nil {
				return fmt.Errorf("record delivery id %q: %w", r.rec.id, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				r.dup = true
				continue
			}
			meta, err := json.Marshal(&r.rec.meta)
			if err != nil {
				return fmt.Errorf("encode delivery %q: %w", r.rec.id, err)
			}
			ib.nextSeq++
			r.rec.seq = ib.nextSeq
			if _, err := ib.stmts.insert.ExecContext(ctx, int64(r.rec.seq), r.rec.id, r.rec.received.UnixNano(), meta, r.rec.body); err != nil {
				return fmt.Errorf("store delivery %q: %w", r.rec.id, err)
			}
			accepted = append(accepted, r.rec)
		}
		if ack > ib.deleted {
			if _, err := ib.stmts.del.ExecContext(ctx, int64(ack)); err != nil {
				return fmt.Errorf("delete acked deliveries through sequence %d: %w", ack, err)
			}
		}
		if prune {
			res, err := ib.stmts.prune.ExecContext(ctx, cutoff, pruneLimit)
			if err != nil {
				return fmt.Errorf("forget delivery ids older than %s: %w", ib.window, err)
			}
			n, _ := res.RowsAffected()
			ib.pruneMore = n == pruneLimit
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
	if ack > ib.deleted {
		ib.deleted = ack
	}
	if prune {
		ib.lastPrune = now
	}
	if len(accepted) > 0 && ib.onCommit != nil {
		ib.onCommit(accepted)
	}
	for _, r := range batch {
		close(r.done)
	}
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

// readStored returns up to limit stored records with after < seq <= upto,
// in sequence order.
func (ib *inbox) readStored(ctx context.Context, after, upto uint64, limit int) ([]*record, error) {
	rows, err := ib.rdb.QueryContext(ctx,
		`SELECT seq, delivery_id, received_ns, meta, body FROM inbox WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
		int64(after), int64(upto), limit)
	if err != nil {
		return nil, fmt.Errorf("read webhook inbox after sequence %d: %w", after, err)
	}
	defer rows.Close()
	var out []*record
	for rows.Next() {
		var (
			r    record
			seq  int64
			ns   int64
			meta []byte
		)
		if err := rows.Scan(&seq, &r.id, &ns, &meta, &r.body); err != nil {
			return nil, fmt.Errorf("read webhook inbox row: %w", err)
		}
		r.seq = uint64(seq)
		r.received = time.Unix(0, ns).UTC()
		if err := json.Unmarshal(meta, &r.meta); err != nil {
			return nil, fmt.Errorf("decode webhook inbox row %d (delivery %q): %w", seq, r.id, err)
		}
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read webhook inbox: %w", err)
	}
	return out, nil
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
	if ib.rdb != nil {
		errs = append(errs, ib.rdb.Close())
		ib.rdb = nil
	}
	if ib.wdb != nil {
		errs = append(errs, ib.wdb.Close())
		ib.wdb = nil
	}
	return errors.Join(errs...)
}
