package embedded

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/klauspost/compress/s2"
)

// row is one message ready to be written.
type row struct {
	topic    string
	uuid     string
	metadata []byte // in the batch encoding
	payload  []byte
}

// topicRows is the rows of one topic in a transaction, in queue order.
type topicRows struct {
	topic string
	rows  []*row
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
// one transaction, then finished: its outcome goes to done, or for a
// publish to its publisher.
type op struct {
	rows       []row
	commit     *offsetCommit
	checkpoint *checkpointRow
	lease      *leaseReq
	done       func(error)

	// A publish reports through its publisher rather than done, and
	// keeps a single message's row inline: two allocations fewer per
	// message.
	pub     *Publisher
	pubDone func(error)
	one     [1]row

	// refused, when set, is why the rows are not written: the writer
	// reports it instead of its transaction's outcome.
	refused error
	// gen is the store's generation when o was enqueued (see
	// ordering.go).
	gen uint64
	// waited: the caller of a publish waits for its outcome (Publish),
	// so nothing is published in its name before it is reported. A
	// failure of o is reported once the new generation has started:
	// the caller's next publish is not failed for this one.
	waited bool
}

// finish reports the outcome of o.
func (o *op) finish(err error) {
	switch {
	case o.pub != nil:
		o.pub.finish(o, err)
	case o.done != nil:
		o.done(err)
	}
}

type checkpointRow struct {
	connector string
	data      string
}

// enqueue hands o to the writer. It blocks while the queue is full, no
// longer than ctx allows. When it returns nil, o.finish will be called.
func (st *store) enqueue(ctx context.Context, o *op) error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return ErrClosed
	}
	// A publish checks ctx under the lock the writer takes to start a
	// generation: a caller that cancels ctx in a failing done sees
	// nothing it publishes afterwards written (see ordering.go). Other
	// ops are taken while there is room, as a subscriber's last commit
	// is as it closes.
	if err := ctx.Err(); err != nil && o.pub != nil {
		st.mu.Unlock()
		return fmt.Errorf("enqueue write to stream database %q: %w", st.file, err)
	}
	o.gen = st.gen
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

// groupWindow bounds how long a checkpoint or an offset commit waits for
// a publish to share its transaction (see run); the store's window.
const groupWindow = time.Millisecond

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
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	defer wait.Stop()
	published := false // the last transaction wrote messages
	for {
		select {
		case o, ok := <-st.queue:
			if !ok {
				return
			}
			batch = append(batch[:0], o)
			rows := len(o.rows)
			open := true
			// take adds what is queued, waiting for the first op until
			// until is done when it is not nil, and reports whether the
			// queue is still open.
			take := func(until <-chan time.Time) bool {
				for rows < maxBatchRows {
					select {
					case o, ok := <-st.queue:
						if !ok {
							return false
						}
						batch = append(batch, o)
						rows += len(o.rows)
						until = nil
						continue
					default:
					}
					if until == nil {
						return true
					}
					select {
					case o, ok := <-st.queue:
						if !ok {
							return false
						}
						batch = append(batch, o)
						rows += len(o.rows)
						until = nil
					case <-until:
						return true
					}
				}
				return true
			}
			open = take(nil)
			// A checkpoint or an offset commit alone, while messages are
			// being published, waits up to groupWindow for the next
			// publish so that one transaction and one sync carry both:
			// a connector saves its checkpoint once its events are
			// durable, so each of its publishes would otherwise be
			// followed by a transaction of its own for the checkpoint.
			if open && rows == 0 && published {
				wait.Reset(time.Duration(st.window.Load()))
				open = take(wait.C)
				wait.Stop()
			}
			published = rows > 0
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

// write stores batch in one transaction, then reports to every op: the
// failures first, so that a new generation starts once their done
// callbacks have returned (see ordering.go), but those of waited
// publishes, reported in the new generation, then the successes.
func (st *store) write(batch []*op) {
	st.transactions.Add(1)
	st.failures.poison(batch)
	err := ErrClosed
	if !st.abort.Load() {
		err = st.writeTx(batch)
		defer st.releaseRows()
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
	failed, waited := false, false
	for _, o := range batch {
		oerr := o.refused
		if oerr == nil {
			oerr = err
		}
		if oerr == nil {
			continue
		}
		if o.pub != nil {
			st.failures.fail(o.rows[0].topic, oerr)
			failed = true
			if o.waited {
				waited = true
				continue
			}
		}
		o.finish(oerr)
	}
	if failed {
		st.mu.Lock()
		st.gen++
		gen := st.gen
		st.mu.Unlock()
		st.failures.lifted(gen)
	}
	if waited {
		for _, o := range batch {
			if !o.waited {
				continue
			}
			if o.refused != nil {
				o.finish(o.refused)
			} else if err != nil {
				o.finish(err)
			}
		}
	}
	inserted := false
	if err == nil {
		for _, o := range batch {
			if o.refused != nil {
				continue
			}
			if len(o.rows) > 0 {
				inserted = true
			}
			o.finish(nil)
		}
	}
	if inserted {
		st.broadcast()
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		st.logger.Error("write to stream database failed", "file", st.file, "ops", len(batch), "error", err)
	}
}

func (st *store) writeTx(batch []*op) (err error) {
	ctx := context.Background()
	if _, err = st.begin.ExecContext(ctx); err != nil {
		// A transaction left open by a failed rollback would fail every
		// later write: end it and try once more.
		_, _ = st.rollback.ExecContext(ctx)
		if _, err = st.begin.ExecContext(ctx); err != nil {
			return fmt.Errorf("begin write to stream database %q: %w", st.file, err)
		}
	}
	defer func() {
		if err != nil {
			// A failed statement may have ended the transaction
			// already, so a failing rollback says nothing more.
			_, _ = st.rollback.ExecContext(ctx)
		}
	}()
	if topics := st.groupRows(batch); len(topics) > 0 {
		if err = st.insertBatches(ctx, topics); err != nil {
			return err
		}
	}
	var commits map[offsetKey]int64
	for _, o := range batch {
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
	for k, off := range commits {
		if _, err = st.commit.ExecContext(ctx, k.group, k.topic, off); err != nil {
			return fmt.Errorf("commit offset of group %q on topic %q: %w", k.group, k.topic, err)
		}
	}
	if _, err = st.commitTx.ExecContext(ctx); err != nil {
		return fmt.Errorf("commit write to stream database %q: %w", st.file, err)
	}
	return nil
}

// groupRows returns the rows of batch by topic, in queue order within a
// topic. It reuses the writer's buffers: the result is valid until the
// next call.
func (st *store) groupRows(batch []*op) []topicRows {
	ts := st.wtopics[:0]
	last := -1
	for _, o := range batch {
		if o.refused != nil {
			continue
		}
		for i := range o.rows {
			r := &o.rows[i]
			if last < 0 || ts[last].topic != r.topic {
				last = -1
				for j := range ts {
					if ts[j].topic == r.topic {
						last = j
						break
					}
				}
				if last < 0 {
					if len(ts) < cap(ts) {
						ts = ts[:len(ts)+1]
						ts[len(ts)-1].topic, ts[len(ts)-1].rows = r.topic, ts[len(ts)-1].rows[:0]
					} else {
						ts = append(ts, topicRows{topic: r.topic})
					}
					last = len(ts) - 1
				}
			}
			ts[last].rows = append(ts[last].rows, r)
		}
	}
	st.wtopics = ts
	return ts
}

// releaseRows drops the writer's references to the rows of the last
// transaction, so that their payloads can be collected.
func (st *store) releaseRows() {
	for i := range st.wtopics {
		clear(st.wtopics[i].rows)
		st.wtopics[i].topic = ""
	}
	st.wtopics = st.wtopics[:0]
	if cap(st.wbuf) > 4*maxBatchBlob {
		st.wbuf = nil
	}
	if cap(st.zbuf) > 4*maxBatchBlob {
		st.zbuf = nil
	}
}

// insertBatches writes the rows of each topic as batches: one row per
// topic, or more when the topic's messages outgrow maxBatchBlob. Offsets
// continue the log's sequence, contiguous within a batch, and every batch
// gets the transaction's publish time, never earlier than the last one.
func (st *store) insertBatches(ctx context.Context, topics []topicRows) error {
	// The end of the log is read inside the transaction: another process
	// may have written since this one last did.
	var last, lastAt int64
	if err := st.readEnd.QueryRowContext(ctx).Scan(&last, &lastAt); err != nil {
		return fmt.Errorf("read end of log: %w", err)
	}
	at := max(time.Now().UnixNano(), lastAt)
	for _, t := range topics {
		rows := t.rows
		for len(rows) > 0 {
			n, size := 0, 0
			for n < len(rows) {
				fs := frameSize(rows[n])
				if n > 0 && size+fs > maxBatchBlob {
					break
				}
				size += fs
				n++
			}
			b := slices.Grow(st.wbuf[:0], 12+size)
			b = appendBatchHeader(b, n)
			for _, r := range rows[:n] {
				b = appendFrame(b, r)
			}
			st.wbuf = b
			if st.compress {
				b = st.compressBatch(b)
			}
			first := last + 1
			last += int64(n)
			// The driver copies the blob when it binds it, so the
			// buffers are free again when Exec returns.
			if _, err := st.insert.ExecContext(ctx, first, last, t.topic, at, b); err != nil {
				return fmt.Errorf("insert %d messages at offset %d of topic %q: %w", n, first, t.topic, err)
			}
			rows = rows[n:]
		}
	}
	return nil
}

// prune deletes the batches whose messages are all older than the
// retention, in bounded transactions.
func (st *store) prune() {
	cutoff := time.Now().Add(-st.retention).UnixNano()
	for range 20 {
		more, err := st.pruneSome(context.Background(), cutoff)
		if err != nil {
			st.logger.Error("prune stream database failed", "file", st.file, "error", err)
			return
		}
		if !more {
			return
		}
	}
}

// pruneSome deletes, in one transaction, the oldest batches published
// before cutoff: up to pruneRows of them, and no more than pruneBytes of
// messages (deleting a batch reads its overflow pages back) unless the
// first alone is larger. more is true when there may be more to delete.
func (st *store) pruneSome(ctx context.Context, cutoff int64) (more bool, err error) {
	if _, err := st.begin.ExecContext(ctx); err != nil {
		return false, fmt.Errorf("begin pruning: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = st.rollback.ExecContext(ctx)
		}
	}()
	rows, err := st.pruneSel.QueryContext(ctx, cutoff, pruneRows)
	if err != nil {
		return false, fmt.Errorf("find batches to prune: %w", err)
	}
	var firsts []int64
	candidates, bytes := 0, 0
	for rows.Next() {
		candidates++
		var first int64
		var size int
		if err := rows.Scan(&first, &size); err != nil {
			rows.Close()
			return false, fmt.Errorf("find batches to prune: %w", err)
		}
		if len(firsts) > 0 && bytes+size > pruneBytes {
			more = true
			break
		}
		firsts = append(firsts, first)
		bytes += size
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("find batches to prune: %w", err)
	}
	if len(firsts) > 0 {
		// Keep the end of the log, which may be a batch about to go.
		var last, lastAt int64
		if err := st.readEnd.QueryRowContext(ctx).Scan(&last, &lastAt); err != nil {
			return false, fmt.Errorf("read end of log: %w", err)
		}
		if _, err := st.writeEnd.ExecContext(ctx, last, lastAt); err != nil {
			return false, fmt.Errorf("store end of log: %w", err)
		}
	}
	for _, first := range firsts {
		if _, err := st.pruneDel.ExecContext(ctx, first); err != nil {
			return false, fmt.Errorf("delete batch at offset %d: %w", first, err)
		}
	}
	if _, err := st.commitTx.ExecContext(ctx); err != nil {
		return false, fmt.Errorf("commit pruning: %w", err)
	}
	return more || candidates == pruneRows, nil
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

// compressBatch returns blob, a batch, S2-compressed (see batchFormatS2)
// in st.zbuf, or blob itself when compression would not make it smaller.
func (st *store) compressBatch(blob []byte) []byte {
	need := 1 + s2.MaxEncodedLen(len(blob))
	if cap(st.zbuf) < need {
		st.zbuf = make([]byte, need)
	}
	z := st.zbuf[:need]
	z[0] = batchFormatS2
	enc := s2.Encode(z[1:], blob)
	if len(enc) == 0 || &enc[0] != &z[1] {
		enc = append(z[:1], enc...)[1:] // not written in place: copy
	}
	if 1+len(enc) >= len(blob) {
		return blob
	}
	return z[:1+len(enc)]
}
