package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// queue hands changes from the binlog reader to Read: Read takes all that
// are there at once, and the reader waits while max are waiting, so that
// what is decoded ahead of the runtime stays bounded.
type queue struct {
	max int
	// spill is how far past max the largest event pushed took the
	// queue (its changes less one): room take leaves for it.
	spill    int
	mu       sync.Mutex
	items    []core.Change
	err      error
	done     bool
	notEmpty chan struct{}
	notFull  chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
}

func newQueue(max int) *queue {
	return &queue{max: max, notEmpty: make(chan struct{}, 1), notFull: make(chan struct{}, 1), stop: make(chan struct{})}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// errQueueStopped is returned by push once the source closes.
var errQueueStopped = fmt.Errorf("binlog reader stopped")

func (q *queue) push(ch core.Change) error {
	return q.pushAll([]core.Change{ch})
}

// pushAll adds chs, in order, once fewer than max are waiting: the changes
// of one rows event go in with one lock and one wake-up, and the queue
// holds at most max-1 plus one event's changes.
func (q *queue) pushAll(chs []core.Change) error {
	if len(chs) == 0 {
		return nil
	}
	q.mu.Lock()
	for len(q.items) >= q.max {
		q.mu.Unlock()
		select {
		case <-q.notFull:
		case <-q.stop:
			return errQueueStopped
		}
		q.mu.Lock()
	}
	q.items = append(q.items, chs...)
	q.spill = max(q.spill, min(len(chs)-1, q.max))
	q.mu.Unlock()
	signal(q.notEmpty)
	return nil
}

// finish records why the reader stopped; take returns it once the queue
// is empty.
func (q *queue) finish(err error) {
	q.mu.Lock()
	if !q.done {
		q.done, q.err = true, err
	}
	q.mu.Unlock()
	signal(q.notEmpty)
}

func (q *queue) halt() { q.stopOnce.Do(func() { close(q.stop) }) }

func (q *queue) take(ctx context.Context) ([]core.Change, error) {
	for {
		q.mu.Lock()
		if n := len(q.items); n > 0 {
			// At most max at once (pushAll may have gone past it by
			// part of an event); the rest stays for the next take, in
			// room for as many as this one and an event past max, so
			// that pushAll does not grow it (a copy, and a larger
			// array handed to the runtime).
			out := q.items[:min(n, q.max):min(n, q.max)]
			rest := q.items[len(out):]
			q.items = make([]core.Change, len(rest), max(len(rest), min(n, q.max))+q.spill)
			copy(q.items, rest)
			room := len(q.items) < q.max
			q.mu.Unlock()
			if room {
				signal(q.notFull)
			}
			return out, nil
		}
		if q.done {
			err := q.err
			q.mu.Unlock()
			return nil, err
		}
		q.mu.Unlock()
		select {
		case <-q.notEmpty:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// reader decodes binlog events into changes. Its HandleEvent runs on the
// syncer's goroutine, one event at a time, so its fields need no lock,
// except those Status reads (under mu).
type reader struct {
	flavor   string
	log      *slog.Logger
	q        *queue
	hist     *history
	sch      schema
	applier  ddlApplier
	captured map[string]bool
	interval time.Duration

	// file is the binlog file being read (file positions only).
	file string
	// cur is the place after the last transaction read.
	cur binlogPos

	// The transaction being read.
	inTxn    bool
	begun    bool // a BEGIN query was read
	start    string
	startPos binlogPos
	gtid     string
	mysqlSID uuid.UUID
	mysqlGNO int64
	ctime    time.Time
	idx      int
	emitted  int

	// resume is the transaction the checkpoint is inside: its changes at
	// or before resumeIdx were delivered.
	resume    string
	resumeIdx int

	// out holds the changes of the rows event being decoded, pushed to q
	// together once it is.
	out []core.Change
	// arena holds the text values and positions of the changes decoded.
	arena arena

	// lastOut is when a change (or heartbeat) was last emitted.
	lastOut time.Time
	// lastHB is the place of the last heartbeat.
	lastHB string

	// The on-demand snapshot: db and chunkSize to read it, resnaps
	// where requests arrive, resnap the one this reader drives.
	db        *sql.DB
	chunkSize int
	resnaps   *resnapshots
	resnap    *resnapshot

	mu        sync.Mutex
	confirmed string
}

var _ replication.EventHandler = (*reader)(nil)

// HandleEvent decodes one event; an error stops the stream, and Read
// returns it.
func (r *reader) HandleEvent(e *replication.BinlogEvent) error {
	switch ev := e.Event.(type) {
	case *replication.RotateEvent:
		if r.cur.gtid == nil {
			r.file = string(ev.NextLogName)
			if !r.inTxn {
				r.cur = binlogPos{file: r.file, pos: uint32(ev.Position)}
			}
		}
	case *replication.MariadbGTIDEvent:
		r.begin(e)
		r.gtid = ev.GTID.String()
		if ev.GTID.SequenceNumber > 0 && r.cur.gtid != nil {
			// applied at the end of the transaction
		}
	case *replication.GTIDEvent:
		r.begin(e)
		u, err := uuid.FromBytes(ev.SID)
		if err != nil {
			return fmt.Errorf("binlog GTID event: %w", err)
		}
		r.mysqlSID, r.mysqlGNO = u, ev.GNO
		r.gtid = u.String() + ":" + strconv.FormatInt(ev.GNO, 10)
		if ev.ImmediateCommitTimestamp > 0 {
			r.ctime = time.UnixMicro(int64(ev.ImmediateCommitTimestamp)).UTC()
		}
	case *replication.TableMapEvent:
		// The syncer decodes every row of the rows events after it, and
		// with a signedness bitmap it builds a map of the table's
		// unsigned columns for each row (a map and its entries per row:
		// a twentieth of the catch-up's CPU). Without one it reads
		// integers as signed, and integer gives an UNSIGNED column of
		// the schema history its unsigned value either way.
		ev.SignednessBitmap = nil
	case *replication.QueryEvent:
		return r.query(e, ev)
	case *replication.RowsEvent:
		return r.rows(e, ev)
	case *replication.XIDEvent:
		return r.commit(e)
	case *replication.HeartbeatEvent:
		if !r.inTxn {
			if err := r.resnapStep(); err != nil {
				return err
			}
			return r.heartbeat(false)
		}
	case *replication.TransactionPayloadEvent:
		for _, inner := range ev.Events {
			if err := r.HandleEvent(inner); err != nil {
				return err
			}
		}
	}
	return nil
}

// begin starts a transaction at event e (a GTID event or a BEGIN).
func (r *reader) begin(e *replication.BinlogEvent) {
	r.inTxn, r.begun, r.idx, r.emitted = true, false, 0, 0
	r.gtid = ""
	if r.cur.gtid == nil && e.Header.LogPos > 0 {
		r.cur = binlogPos{file: r.file, pos: e.Header.LogPos - e.Header.EventSize}
	}
	r.startPos = r.cur
	r.start = r.cur.String()
	r.ctime = time.Unix(int64(e.Header.Timestamp), 0).UTC()
}

// end closes the transaction whose last event is e.
func (r *reader) end(e *replication.BinlogEvent) error {
	r.inTxn, r.begun = false, false
	switch set := r.cur.gtid.(type) {
	case *gomysql.MariadbGTIDSet:
		if r.gtid != "" {
			if err := set.Update(r.gtid); err != nil {
				return fmt.Errorf("binlog GTID %s: %w", r.gtid, err)
			}
		}
	case *gomysql.MysqlGTIDSet:
		if r.mysqlGNO > 0 {
			set.AddGTID(r.mysqlSID, r.mysqlGNO)
		}
	case nil:
		if e.Header.LogPos > 0 {
			r.cur = binlogPos{file: r.file, pos: e.Header.LogPos}
		}
	}
	r.mysqlGNO = 0
	if r.start == r.resume {
		r.resume = ""
	}
	if err := r.resnapStep(); err != nil {
		return err
	}
	if r.emitted > 0 {
		r.lastOut = time.Now()
		return nil
	}
	if time.Since(r.lastOut) >= r.interval {
		return r.heartbeat(true)
	}
	return nil
}

// heartbeat emits a change that carries the place after the last
// transaction, so that the checkpoint advances past transactions of
// tables not captured. After an idle interval it emits one only when the
// place moved since the last.
func (r *reader) heartbeat(busy bool) error {
	at := heartbeatPrefix + r.cur.String()
	if at == r.lastHB || (!busy && time.Since(r.lastOut) < r.interval) {
		return nil
	}
	r.lastHB, r.lastOut = at, time.Now()
	return r.q.push(core.Change{
		Op:       core.OpMessage,
		Meta:     map[string]any{"kind": "heartbeat"},
		Source:   core.SourceInfo{System: "mysql"},
		Position: cdc.StreamPosition(at, 0),
	})
}

func (r *reader) commit(e *replication.BinlogEvent) error {
	if !r.inTxn {
		return nil
	}
	return r.end(e)
}

func (r *reader) query(e *replication.BinlogEvent, ev *replication.QueryEvent) error {
	q := strings.TrimSpace(string(ev.Query))
	switch {
	case strings.EqualFold(q, "BEGIN"):
		if !r.inTxn {
			r.begin(e)
		}
		r.begun = true
		return nil
	case strings.EqualFold(q, "COMMIT"), strings.EqualFold(q, "ROLLBACK"):
		// ROLLBACK ends a transaction whose non-transactional changes
		// were logged anyway.
		return r.commit(e)
	}
	if !r.inTxn {
		r.begin(e)
	}
	if err := r.ddl(string(ev.Schema), q); err != nil {
		return err
	}
	if !r.begun {
		return r.end(e)
	}
	return nil
}

// ddl applies a statement to the schema; when it changed tables, the new
// schema is recorded in the history (durably) before anything after it is
// emitted, and each captured table changed yields a schema change.
func (r *reader) ddl(db, stmt string) error {
	next, effects, err := r.applier.apply(r.sch, db, stmt)
	if err != nil {
		return fmt.Errorf("binlog transaction %s: %w; the schema history cannot decode the rows after it: restore the statement's effect with a statement the parser follows, or re-snapshot (remove the checkpoint and the state directory's schema_history.json)", r.txnName(), err)
	}
	if len(effects) == 0 {
		return nil
	}
	after, err := r.placeAfter()
	if err != nil {
		return err
	}
	changed := false
	for _, ef := range effects {
		if ef.Kind != "truncate" {
			changed = true
		}
	}
	if changed {
		if err := r.hist.record(after, stmt, next); err != nil {
			return err
		}
		r.sch = next
	}
	for _, ef := range effects {
		k := tableKey(ef.DB, ef.Table)
		from := strings.ToLower(ef.From)
		if !r.captured[k] && !r.captured[from] {
			continue
		}
		key, skip := r.next()
		if skip {
			continue
		}
		src := core.SourceInfo{System: "mysql", Schema: ef.DB, Table: ef.Table, CommitTime: r.ctime, TxID: r.txnName()}
		if ef.Kind == "truncate" {
			r.resnapNote(k, nil, nil, nil, true)
			if err := r.emit(key, core.Change{Op: core.OpTruncate, Source: src}); err != nil {
				return err
			}
			continue
		}
		payload := map[string]any{"ddl": stmt, "kind": ef.Kind, "database": ef.DB, "table": ef.Table}
		if ef.From != "" {
			payload["from"] = ef.From
		}
		if t := next[k]; t != nil {
			cols := make([]any, len(t.Columns))
			for i, c := range t.Columns {
				cols[i] = map[string]any{"name": c.Name, "type": c.Type}
			}
			payload["columns"] = cols
			key := make([]any, len(t.Key))
			for i, n := range t.Key {
				key[i] = n
			}
			payload["primary_key"] = key
		}
		if err := r.emit(key, core.Change{Op: core.OpMessage, Meta: map[string]any{"kind": "schema_change"}, Payload: payload, Source: src}); err != nil {
			return err
		}
	}
	return nil
}

// placeAfter returns the place after the current transaction.
func (r *reader) placeAfter() (binlogPos, error) {
	p := r.cur.clone()
	switch set := p.gtid.(type) {
	case *gomysql.MariadbGTIDSet:
		if r.gtid != "" {
			if err := set.Update(r.gtid); err != nil {
				return p, err
			}
		}
	case *gomysql.MysqlGTIDSet:
		if r.mysqlGNO > 0 {
			set.AddGTID(r.mysqlSID, r.mysqlGNO)
		}
	}
	return p, nil
}

func (r *reader) txnName() string {
	if r.gtid != "" {
		return r.gtid
	}
	return strings.TrimPrefix(r.start, "file:")
}

// next returns the index of the transaction's next change and whether an
// earlier run delivered it.
func (r *reader) next() (int, bool) {
	i := r.idx
	r.idx++
	return i, r.start == r.resume && i <= r.resumeIdx
}

func (r *reader) emit(i int, ch core.Change) error {
	ch.Position = cdc.StreamPosition(r.start, i)
	r.emitted++
	return r.q.push(ch)
}

// emitRows pushes the changes of one rows event, r.out, at once, and
// empties r.out for the next event.
func (r *reader) emitRows() error {
	err := r.q.pushAll(r.out)
	clear(r.out)
	r.out = r.out[:0]
	return err
}

func (r *reader) rows(e *replication.BinlogEvent, ev *replication.RowsEvent) error {
	if ev.Table == nil {
		return nil
	}
	k := tableKey(string(ev.Table.Schema), string(ev.Table.Table))
	if !r.captured[k] {
		return nil
	}
	if !r.inTxn {
		r.begin(e)
	}
	// What an event that failed half-way left is not pushed.
	clear(r.out)
	r.out = r.out[:0]
	t := r.sch[k]
	if t == nil {
		return fmt.Errorf("binlog transaction %s changes %s.%s, which the schema history does not know: re-snapshot (remove the checkpoint and schema_history.json)", r.txnName(), ev.Table.Schema, ev.Table.Table)
	}
	if int(ev.ColumnCount) != len(t.Columns) {
		return fmt.Errorf("binlog transaction %s: a row of %s has %d columns and the schema history has %d (%s): a DDL statement was missed; re-snapshot (remove the checkpoint and schema_history.json)", r.txnName(), t.qualified(), ev.ColumnCount, len(t.Columns), strings.Join(columnNames(t), ", "))
	}
	if names := ev.Table.ColumnNameString(); len(names) == len(t.Columns) {
		for i, n := range names {
			if !strings.EqualFold(n, t.Columns[i].Name) {
				return fmt.Errorf("binlog transaction %s: the binlog names column %d of %s %q and the schema history %q: a DDL statement was missed; re-snapshot (remove the checkpoint and schema_history.json)", r.txnName(), i+1, t.qualified(), n, t.Columns[i].Name)
			}
		}
	}
	var op core.Op
	step := 1
	switch e.Header.EventType {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2, replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
		op = core.OpCreate
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2, replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1, replication.PARTIAL_UPDATE_ROWS_EVENT:
		op, step = core.OpUpdate, 2
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2, replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		op = core.OpDelete
	default:
		return nil
	}
	for i := 0; i+step <= len(ev.Rows); i += step {
		idx, skip := r.next()
		if skip {
			continue
		}
		ch := core.Change{Op: op, Source: core.SourceInfo{System: "mysql", Schema: t.DB, Table: t.Name, CommitTime: r.ctime, TxID: r.txnName()}}
		first, err := r.record(t, ev, i)
		if err != nil {
			return err
		}
		switch op {
		case core.OpCreate:
			ch.After = first
			ch.Key = keyOf(t, first)
		case core.OpDelete:
			ch.Before = first
			ch.Key = keyOf(t, first)
		case core.OpUpdate:
			after, err := r.record(t, ev, i+1)
			if err != nil {
				return err
			}
			ch.Before, ch.After = first, after
			ch.Key = keyOf(t, after)
			for n, v := range keyOf(t, first) {
				if _, ok := after[n]; !ok {
					// A MINIMAL after image lacks the key columns not
					// changed: they are in the before image.
					ch.Key[n] = v
				}
			}
		}
		r.resnapNote(k, t, ch.Before, ch.After, false)
		ch.Position = r.arena.position(r.start, idx)
		r.emitted++
		r.out = append(r.out, ch)
	}
	return r.emitRows()
}

// record decodes row i of ev with the columns of t. Columns a MINIMAL row
// image leaves out are absent from the record.
func (r *reader) record(t *table, ev *replication.RowsEvent, i int) (map[string]any, error) {
	row := ev.Rows[i]
	var skipped []int
	if i < len(ev.SkippedColumns) {
		skipped = ev.SkippedColumns[i]
	}
	rec := make(map[string]any, len(t.Columns))
	for j := range t.Columns {
		if j >= len(row) {
			break
		}
		if len(skipped) > 0 && containsInt(skipped, j) {
			continue
		}
		c := &t.Columns[j]
		v, err := decodeBinlog(c, row[j], &r.arena)
		if err != nil {
			return nil, fmt.Errorf("binlog transaction %s: decode column %s of %s: %w", r.txnName(), c.Name, t.qualified(), err)
		}
		rec[c.Name] = v
	}
	return rec, nil
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func keyOf(t *table, rec map[string]any) map[string]any {
	if len(t.Key) == 0 || rec == nil {
		return nil
	}
	k := make(map[string]any, len(t.Key))
	for _, n := range t.Key {
		if i := t.colIndex(n); i >= 0 {
			if v, ok := rec[t.Columns[i].Name]; ok {
				k[t.Columns[i].Name] = v
			}
		}
	}
	return k
}

func columnNames(t *table) []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}
