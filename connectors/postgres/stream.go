package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// HeartbeatPrefix is the prefix of the logical decoding messages the
// message heartbeat writes.
const HeartbeatPrefix = "tributary_heartbeat"

// relation is a table as the replication stream describes it.
type relation struct {
	schema, table string
	names         []string
	oids          []uint32
	// keyIdx are the indexes of the key columns in names.
	keyIdx []int
	meta   *tableMeta
	outbox bool
}

// errStopped ends the receiver when the source closes.
var errStopped = errors.New("replication stream stopped")

// receiver owns the replication connection: it reads and decodes the
// stream into batches of changes, answers keepalives and reports the
// confirmed position. Only its goroutine uses conn, except to set the read
// deadline that wakes it.
type receiver struct {
	conn     *pgconn.PgConn
	pool     *pgxpool.Pool
	cfg      *Config
	log      *slog.Logger
	types    *types
	rels     map[uint32]*relation
	rel      *releaser
	toast    *toaster
	outbox   *outboxTracker
	outboxOf string
	// resnaps holds the on-demand snapshot in progress; win is the
	// deduplication window the watermarks open (receiver goroutine only).
	resnaps *resnapshots
	win     *window

	out  chan []core.Change
	stop chan struct{}
	done chan struct{}
	err  error

	// resume: changes at or before it were acknowledged in an earlier run.
	resume ord

	dmu     sync.Mutex
	stopped bool

	// The transaction being decoded.
	inTxn    bool
	skipTxn  bool
	commit   pglogrepl.LSN
	commitS  string
	xid      string
	ctime    time.Time
	idx      int
	batch    []core.Change
	retry    bool
	sentLSN  pglogrepl.LSN
	lastSent time.Time
	// lastData is when the last XLogData arrived (unix nanoseconds), for
	// idle detection by the heartbeat.
	lastData atomic.Int64
	// serverEnd is the server's WAL end from the last keepalive.
	serverEnd atomic.Uint64
}

func (r *receiver) setDeadline(t time.Time) {
	r.dmu.Lock()
	defer r.dmu.Unlock()
	if r.stopped {
		t = time.Now()
	}
	_ = r.conn.Conn().SetReadDeadline(t)
}

// halt asks the receiver to stop and wakes it.
func (r *receiver) halt() {
	r.dmu.Lock()
	defer r.dmu.Unlock()
	if !r.stopped {
		r.stopped = true
		close(r.stop)
	}
	_ = r.conn.Conn().SetReadDeadline(time.Now())
}

func (r *receiver) isStopped() bool {
	r.dmu.Lock()
	defer r.dmu.Unlock()
	return r.stopped
}

func (r *receiver) wakeEvery() time.Duration {
	return min(r.cfg.Heartbeat.Interval, time.Second)
}

func (r *receiver) run() {
	defer close(r.done)
	defer close(r.out)
	err := r.loop()
	if errors.Is(err, errStopped) {
		err = nil
	}
	if err == nil {
		// A last report of what is confirmed, before the connection closes.
		_ = r.sendStatus(false)
	}
	r.err = err
}

func (r *receiver) loop() error {
	interval := r.cfg.Heartbeat.Interval
	nextStatus := time.Now().Add(interval)
	for {
		if r.isStopped() {
			return errStopped
		}
		now := time.Now()
		flush := r.rel.flush()
		if !now.Before(nextStatus) || (flush > r.sentLSN && now.Sub(r.lastSent) >= r.wakeEvery()) {
			// Ask for a reply when idle between transactions: the
			// keepalive that answers carries the server's position, which
			// the slot may confirm once everything read is acknowledged.
			if err := r.sendStatus(!r.inTxn && len(r.batch) == 0 && !now.Before(nextStatus)); err != nil {
				return err
			}
			if !now.Before(nextStatus) {
				nextStatus = now.Add(interval)
			}
		}
		deadline := now.Add(r.wakeEvery())
		if nextStatus.Before(deadline) {
			deadline = nextStatus
		}
		if r.retry {
			deadline = now.Add(2 * time.Millisecond)
		}
		r.setDeadline(deadline)
		msg, err := r.conn.ReceiveMessage(context.Background())
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if len(r.batch) > 0 {
					if err := r.deliver(r.retry); err != nil {
						return err
					}
				}
				continue
			}
			if r.isStopped() {
				return errStopped
			}
			return fmt.Errorf("receive from slot %q: %w", r.cfg.Slot, err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := r.handleCopy(m.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return r.streamError(pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return fmt.Errorf("slot %q: the server ended the replication stream", r.cfg.Slot)
		}
	}
}

func (r *receiver) streamError(err *pgconn.PgError) error {
	if err.Code == "55006" {
		return slotBusy(r.cfg.Slot, 0)
	}
	return fmt.Errorf("replication stream of slot %q: %w", r.cfg.Slot, err)
}

func (r *receiver) sendStatus(reply bool) error {
	flush := r.rel.flush()
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), r.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: flush, WALFlushPosition: flush, WALApplyPosition: flush, ReplyRequested: reply,
	})
	if err != nil {
		return fmt.Errorf("send status to slot %q: %w", r.cfg.Slot, err)
	}
	r.sentLSN, r.lastSent = flush, time.Now()
	return nil
}

// deliver hands the batch to Read. With block false it gives up at once
// when Read is busy and retries shortly; with block true it waits,
// reporting status meanwhile so that the server does not time out.
func (r *receiver) deliver(block bool) error {
	select {
	case r.out <- r.batch:
		r.batch, r.retry = make([]core.Change, 0, len(r.batch)), false
		return nil
	default:
	}
	if !block && len(r.batch) < r.cfg.MaxBatch {
		r.retry = true
		return nil
	}
	t := time.NewTicker(r.wakeEvery())
	defer t.Stop()
	for {
		select {
		case r.out <- r.batch:
			r.batch, r.retry = make([]core.Change, 0, len(r.batch)), false
			return nil
		case <-t.C:
			if err := r.sendStatus(false); err != nil {
				return err
			}
		case <-r.stop:
			return errStopped
		}
	}
}

func (r *receiver) handleCopy(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("slot %q: parse keepalive: %w", r.cfg.Slot, err)
		}
		r.serverEnd.Store(uint64(ka.ServerWALEnd))
		if !r.inTxn {
			r.rel.idle(ka.ServerWALEnd)
		}
		if ka.ReplyRequested {
			return r.sendStatus(false)
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("slot %q: parse XLogData: %w", r.cfg.Slot, err)
		}
		r.lastData.Store(time.Now().UnixNano())
		return r.handleLogical(xld)
	}
	return nil
}

func (r *receiver) handleLogical(xld pglogrepl.XLogData) error {
	msg, err := pglogrepl.Parse(xld.WALData)
	if err != nil {
		return fmt.Errorf("slot %q: parse pgoutput message at %s: %w", r.cfg.Slot, xld.WALStart, err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		return r.relation(m)
	case *pglogrepl.BeginMessage:
		r.inTxn, r.idx = true, 0
		r.commit, r.commitS = m.FinalLSN, m.FinalLSN.String()
		r.xid = strconv.FormatUint(uint64(m.Xid), 10)
		r.ctime = m.CommitTime.UTC()
		r.skipTxn = m.FinalLSN < r.resume.c
	case *pglogrepl.CommitMessage:
		r.inTxn = false
		switch {
		case r.skipTxn:
		case r.idx == 0:
			// No change (a watermark whose rows were all dropped): the
			// commit is released with what was emitted before it.
			r.rel.idle(m.TransactionEndLSN)
		default:
			r.rel.add(ord{r.commit, r.idx - 1}, m.TransactionEndLSN)
		}
		if len(r.batch) > 0 {
			return r.deliver(len(r.batch) >= r.cfg.MaxBatch)
		}
	case *pglogrepl.InsertMessage:
		return r.row(m.RelationID, core.OpCreate, 0, nil, m.Tuple)
	case *pglogrepl.UpdateMessage:
		return r.row(m.RelationID, core.OpUpdate, m.OldTupleType, m.OldTuple, m.NewTuple)
	case *pglogrepl.DeleteMessage:
		return r.row(m.RelationID, core.OpDelete, m.OldTupleType, m.OldTuple, nil)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			key, skip := r.next()
			if skip {
				continue
			}
			rel, ok := r.rels[id]
			if !ok {
				return fmt.Errorf("slot %q: truncate of unknown relation %d", r.cfg.Slot, id)
			}
			if r.win.covers(rel) {
				r.win.truncated = true
			}
			r.append(key, core.Change{Op: core.OpTruncate, Source: r.source(rel)})
		}
	case *pglogrepl.LogicalDecodingMessage:
		if m.Transactional && m.Prefix == WatermarkPrefix {
			r.watermark(string(m.Content))
		}
		if !r.inTxn && !m.Transactional {
			r.rel.idle(m.LSN)
		}
	}
	return nil
}

// next returns the key of the next change of the transaction and whether
// an earlier run already had it acknowledged.
func (r *receiver) next() (ord, bool) {
	key := ord{r.commit, r.idx}
	r.idx++
	if key.i == 0 && !r.skipTxn {
		// The transaction is decoded again after a restart until its
		// first change is acknowledged.
		r.rel.add(key, r.commit)
	}
	if r.skipTxn || !r.resume.less(key) {
		r.rel.emit(key, true)
		return key, true
	}
	return key, false
}

func (r *receiver) append(key ord, ch core.Change) {
	ch.Position = cdc.StreamPosition(r.commitS, key.i)
	r.batch = append(r.batch, ch)
	r.rel.emit(key, false)
}

func (r *receiver) source(rel *relation) core.SourceInfo {
	return core.SourceInfo{System: "postgres", Schema: rel.schema, Table: rel.table, CommitTime: r.ctime, TxID: r.xid}
}

func (r *receiver) relation(m *pglogrepl.RelationMessage) error {
	rel := &relation{schema: m.Namespace, table: m.RelationName}
	var flagged []int
	for i, c := range m.Columns {
		rel.names = append(rel.names, c.Name)
		rel.oids = append(rel.oids, c.DataType)
		if c.Flags&1 != 0 {
			flagged = append(flagged, i)
		}
	}
	meta := &tableMeta{oid: m.RelationID, schema: m.Namespace, name: m.RelationName, replident: m.ReplicaIdentity}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := meta.loadColumns(ctx, r.pool); err != nil {
		r.log.Warn("cannot read the table's primary key; using its replica identity columns as the key", "table", meta.qualified(), "err", err)
	}
	rel.meta = meta
	for _, k := range meta.key {
		for i, n := range rel.names {
			if n == k {
				rel.keyIdx = append(rel.keyIdx, i)
			}
		}
	}
	if len(rel.keyIdx) == 0 {
		rel.keyIdx = flagged
	}
	rel.outbox = r.outboxOf != "" && meta.qualified() == r.outboxOf
	r.rels[m.RelationID] = rel
	return nil
}

// tuple decodes a tuple into a record. unchanged lists the columns the
// tuple marks as unchanged TOAST values.
func (r *receiver) tuple(rel *relation, t *pglogrepl.TupleData, onlyKey bool) (rec map[string]any, unchanged []string, err error) {
	if t == nil {
		return nil, nil, nil
	}
	rec = make(map[string]any, len(t.Columns))
	for i, c := range t.Columns {
		if i >= len(rel.names) {
			break
		}
		name := rel.names[i]
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			if !onlyKey {
				rec[name] = nil
			}
		case pglogrepl.TupleDataTypeToast:
			unchanged = append(unchanged, name)
		case pglogrepl.TupleDataTypeText:
			v, err := r.types.decode(rel.oids[i], c.Data)
			if err != nil {
				return nil, nil, fmt.Errorf("decode column %q of %s.%s: %w", name, rel.schema, rel.table, err)
			}
			rec[name] = v
		}
	}
	return rec, unchanged, nil
}

func (rel *relation) key(rec map[string]any) map[string]any {
	if rec == nil || len(rel.keyIdx) == 0 {
		return nil
	}
	k := make(map[string]any, len(rel.keyIdx))
	for _, i := range rel.keyIdx {
		k[rel.names[i]] = rec[rel.names[i]]
	}
	return k
}

func (r *receiver) row(relID uint32, op core.Op, oldType uint8, oldT, newT *pglogrepl.TupleData) error {
	key, skip := r.next()
	if skip {
		return nil
	}
	rel, ok := r.rels[relID]
	if !ok {
		return fmt.Errorf("slot %q: change of unknown relation %d", r.cfg.Slot, relID)
	}
	if r.win.covers(rel) {
		r.win.note(rel, oldT)
		r.win.note(rel, newT)
	}
	if rel.outbox {
		if op != core.OpCreate {
			return nil // deletes of captured rows and other edits are not events
		}
		after, _, err := r.tuple(rel, newT, false)
		if err != nil {
			return err
		}
		ch := outboxChange(after)
		ch.Source = r.source(rel)
		r.append(key, ch)
		r.outbox.add(key, after["id"])
		return nil
	}
	before, _, err := r.tuple(rel, oldT, oldType == 'K')
	if err != nil {
		return err
	}
	after, unchanged, err := r.tuple(rel, newT, false)
	if err != nil {
		return err
	}
	ch := core.Change{Op: op, Source: r.source(rel)}
	switch op {
	case core.OpCreate:
		ch.After, ch.Key = after, rel.key(after)
	case core.OpUpdate:
		if before == nil {
			before = rel.key(after)
		}
		if len(unchanged) > 0 {
			missing, err := r.toast.fill(rel, newT, before, after, unchanged)
			if err != nil {
				return err
			}
			if len(missing) > 0 {
				ch.Meta = map[string]any{"toast_unavailable": missing}
			}
		}
		ch.Before, ch.After, ch.Key = before, after, rel.key(after)
	case core.OpDelete:
		ch.Before, ch.Key = before, rel.key(before)
	}
	r.append(key, ch)
	return nil
}
