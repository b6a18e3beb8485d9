package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// insertRows is how many rows one multi-row INSERT holds.
const insertRows = 32

func insertSQL(rows int) string {
	var b strings.Builder
	// OR ROLLBACK: a failing row fails the whole transaction anyway, and
	// it spares SQLite a statement journal per multi-row statement.
	b.WriteString(`INSERT OR ROLLBACK INTO messages (topic, uuid, key, metadata, payload, published_at) VALUES `)
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?)")
	}
	return b.String()
}

// row is one message ready to be inserted.
type row struct {
	topic    string
	uuid     string
	key      string
	metadata []byte
	payload  []byte
}

// offsetCommit is a consumer group's last acknowledged offset on a topic.
// With latest set, the writer stores the group's offset as it is when the
// transaction is written, so that a burst of acks costs one queued op.
type offsetCommit struct {
	group  string
	topic  string
	offset int64
	latest *group
}

// op is one unit of work for the writer. Every op in a batch is written in
// one transaction, then its done is called.
type op struct {
	rows       []row
	commit     *offsetCommit
	checkpoint *checkpointRow
	lease      *leaseReq
	done       func(error)
}

type checkpointRow struct {
	connector string
	data      string
}

// enqueue hands o to the writer. It blocks while the queue is full, no
// longer than ctx allows. When it returns nil, o.done will be called.
func (st *store) enqueue(ctx context.Context, o *op) error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return ErrClosed
	}
	st.senders.Add(1)
	st.mu.Unlock()
	defer st.senders.Done()
	select {
	case st.queue <- o:
		return nil
	default:
	}
	select {
	case st.queue <- o:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("enqueue write to stream database %q: %w", st.file, ctx.Err())
	}
}

// changed returns a channel closed at the next commit of new messages.
func (st *store) changed() <-chan struct{} {
	st.notifyMu.Lock()
	defer st.notifyMu.Unlock()
	return st.notifyCh
}

func (st *store) broadcast() {
	st.notifyMu.Lock()
	close(st.notifyCh)
	st.notifyCh = make(chan struct{})
	st.notifyMu.Unlock()
}

// run is the writer: it drains the queue into transactions until the queue
// is closed.
func (st *store) run() {
	defer close(st.done)
	var prune <-chan time.Time
	if st.retention > 0 {
		t := time.NewTicker(st.pruneIv)
		defer t.Stop()
		prune = t.C
	}
	batch := make([]*op, 0, 512)
	for {
		select {
		case o, ok := <-st.queue:
			if !ok {
				return
			}
			batch = append(batch[:0], o)
			rows := len(o.rows)
			open := true
		drain:
			for rows < maxBatchRows {
				select {
				case o, ok := <-st.queue:
					if !ok {
						open = false
						break drain
					}
					batch = append(batch, o)
					rows += len(o.rows)
				default:
					break drain
				}
			}
			st.write(batch)
			clear(batch)
			if !open {
				return
			}
		case <-prune:
			if !st.abort.Load() {
				st.prune()
			}
		}
	}
}

// write stores batch in one transaction, then reports to every op.
func (st *store) write(batch []*op) {
	err := ErrClosed
	if !st.abort.Load() {
		err = st.writeTx(batch)
		// Another process may hold the file for longer than the busy
		// timeout, or be opening or closing the log: try again for a
		// few seconds before failing the batch.
		for wait := 10 * time.Millisecond; isBusy(err) && wait < 2*time.Second && !st.abort.Load(); wait *= 2 {
			time.Sleep(wait)
			err = st.writeTx(batch)
		}
	} else {
		st.aborted.Add(int64(len(batch)))
	}
	inserted := false
	for _, o := range batch {
		if len(o.rows) > 0 {
			inserted = true
		}
		if o.done != nil {
			o.done(err)
		}
	}
	if err == nil && inserted {
		st.broadcast()
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		st.logger.Error("write to stream database failed", "file", st.file, "ops", len(batch), "error", err)
	}
}

func (st *store) writeTx(batch []*op) (err error) {
	ctx := context.Background()
	if _, err = st.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		// A transaction left open by a failed rollback would fail every
		// later write: end it and try once more.
		_, _ = st.wconn.ExecContext(ctx, "ROLLBACK")
		if _, err = st.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return fmt.Errorf("begin write to stream database %q: %w", st.file, err)
		}
	}
	defer func() {
		if err != nil {
			// INSERT OR ROLLBACK may have ended the transaction already,
			// so a failing rollback says nothing more.
			_, _ = st.wconn.ExecContext(ctx, "ROLLBACK")
		}
	}()
	at := max(time.Now().UnixNano(), st.lastAt)
	var commits map[offsetKey]int64
	args := make([]any, 0, insertRows*6)
	flush := func(stmt *sql.Stmt) error {
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("insert %d messages: %w", len(args)/6, err)
		}
		args = args[:0]
		return nil
	}
	// Rows go in statements of insertRows rows, in queue order, so that
	// offsets follow the order publishes were enqueued in.
	for _, o := range batch {
		for i := range o.rows {
			r := &o.rows[i]
			args = append(args, r.topic, r.uuid, r.key, r.metadata, r.payload, at)
			if len(args) == insertRows*6 {
				if err = flush(st.insertN); err != nil {
					return err
				}
			}
		}
		if o.commit != nil {
			if commits == nil {
				commits = map[offsetKey]int64{}
			}
			off := o.commit.offset
			if g := o.commit.latest; g != nil {
				g.mu.Lock()
				off, g.pending = g.offset, false
				g.mu.Unlock()
			}
			commits[offsetKey{o.commit.group, o.commit.topic}] = off
		}
		if o.lease != nil {
			if err = st.writeLease(ctx, o.lease); err != nil {
				return err
			}
		}
		if o.checkpoint != nil {
			if _, err = st.saveCP.ExecContext(ctx, o.checkpoint.connector, o.checkpoint.data); err != nil {
				return fmt.Errorf("save checkpoint of %q: %w", o.checkpoint.connector, err)
			}
		}
	}
	for i := 0; i < len(args); i += 6 {
		if _, err = st.insert.ExecContext(ctx, args[i:i+6]...); err != nil {
			return fmt.Errorf("insert message %q: %w", args[i+1], err)
		}
	}
	for k, off := range commits {
		if _, err = st.commit.ExecContext(ctx, k.group, k.topic, off); err != nil {
			return fmt.Errorf("commit offset of group %q on topic %q: %w", k.group, k.topic, err)
		}
	}
	if _, err = st.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit write to stream database %q: %w", st.file, err)
	}
	st.lastAt = at
	return nil
}

// prune deletes messages older than the retention, a bounded number of rows
// at a time.
func (st *store) prune() {
	cutoff := time.Now().Add(-st.retention).UnixNano()
	ctx := context.Background()
	for range 20 {
		res, err := st.wconn.ExecContext(ctx, `DELETE FROM messages WHERE "offset" IN
			(SELECT "offset" FROM messages WHERE published_at < ? ORDER BY published_at LIMIT ?)`, cutoff, pruneRows)
		if err != nil {
			st.logger.Error("prune stream database failed", "file", st.file, "error", err)
			return
		}
		if n, _ := res.RowsAffected(); n < pruneRows {
			return
		}
	}
}

// shutdown stops intake, lets the writer drain the queue (or fail what is
// left once ctx is done), then closes the database.
func (st *store) shutdown(ctx context.Context) error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		<-st.done
		return nil
	}
	st.closed = true
	st.mu.Unlock()

	var ctxErr error
	waited := make(chan struct{})
	go func() {
		st.senders.Wait()
		close(st.queue)
		close(waited)
	}()
	select {
	case <-waited:
		select {
		case <-st.done:
		case <-ctx.Done():
			ctxErr = ctx.Err()
		}
	case <-ctx.Done():
		ctxErr = ctx.Err()
	}
	if ctxErr != nil {
		// Fail what is still queued; the writer finishes at most the
		// transaction it is in.
		st.abort.Store(true)
		<-waited
		<-st.done
		if n := st.aborted.Load(); n > 0 {
			ctxErr = fmt.Errorf("flush stream database %q: %d queued writes failed: %w", st.file, n, ctxErr)
		} else {
			ctxErr = nil
		}
	}
	st.ckptStop()
	<-st.ckptDone
	return errors.Join(ctxErr, st.release())
}

// checkpointInterval is how often the write-ahead log is copied into the
// database file.
const checkpointInterval = 500 * time.Millisecond

// checkpointLoop copies the write-ahead log into the database file on a
// reader connection, so that the writer only ever appends to the log and
// the copy (and its fsync) runs beside it. A passive checkpoint never
// blocks the writer or the readers.
func (st *store) checkpointLoop() {
	defer close(st.ckptDone)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-st.ckptCtx.Done():
			return
		}
		if _, err := st.rdb.ExecContext(st.ckptCtx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil && st.ckptCtx.Err() == nil {
			st.logger.Warn("checkpoint stream database failed", "file", st.file, "error", err)
		}
	}
}
