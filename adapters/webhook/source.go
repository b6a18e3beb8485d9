package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/core"
)

// PositionVersion is the format of the positions this source emits: Data
// is the delivery id.
const PositionVersion = 1

// Defaults of Config's zero fields.
const (
	DefaultMaxBodyBytes    = 1 << 20
	DefaultDedupWindow     = 24 * time.Hour
	DefaultDedupMemoryIDs  = defaultHotLimit
	DefaultMaxPending      = 10000
	DefaultMaxPendingBytes = 64 << 20
	DefaultRetryAfter      = 5 * time.Second
	DefaultAckTimeout      = 10 * time.Second
)

// AckMode says what a 2xx answer waits for.
type AckMode string

// The answer modes.
const (
	// AckInbox answers once the delivery is committed to the inbox, which
	// keeps it until the stream has it: fast, and a 2xx still means "will
	// be delivered".
	AckInbox AckMode = "inbox"
	// AckStream makes the stream the inbox: a delivery is not written to
	// the inbox log but handed to Read in memory, and answered once the
	// source's Ack covers it (its events, or its dead letter, are durable
	// on the stream and its checkpoint is stored): one durable write per
	// delivery. A delivery not acknowledged within AckTimeout, or still
	// waiting when the source closes, gets 503 with Retry-After and is
	// dropped unless Read already took it; the sender's retry brings it
	// again. Its id joins the dedup index once acknowledged.
	AckStream AckMode = "stream"
)

// DefaultContentTypes returns the media types accepted when
// Config.ContentTypes is empty. Types ending in +json and +xml are accepted
// with them.
func DefaultContentTypes() []string {
	return []string{"application/json", "application/x-www-form-urlencoded", "application/xml", "text/xml"}
}

// maxIDLen bounds delivery ids; a longer id is replaced by its SHA-256.
const maxIDLen = 200

// readLimit bounds how many changes one Read returns.
const readLimit = 512

// Config configures a Source. A zero field takes its default.
type Config struct {
	// Path is the URL path deliveries arrive at, in net/http ServeMux
	// syntax without a method: "/hooks/orders", "/hooks/{tenant}/orders".
	// Wildcards become the change's meta.path entries.
	Path string
	// Methods lists the accepted request methods; default POST.
	Methods []string
	// MaxBodyBytes bounds a request body; larger bodies get 413.
	MaxBodyBytes int64
	// ContentTypes lists the accepted media types; others get 415. A
	// delivery without a Content-Type is taken as application/json.
	ContentTypes []string
	// Verifier checks each delivery before anything is stored; nil accepts
	// every delivery.
	Verifier Verifier
	// DeliveryID returns the sender's id of a delivery (a header, a body
	// field). When it is nil or returns "", the id is "sha256:" followed by
	// the hex SHA-256 of the body.
	DeliveryID func(req *Request) string
	// HooksReadPayload says DeliveryID or Handshake read Request.Payload
	// (a body field as the id, a challenge in the body). The handler then
	// builds the whole payload once, which the hooks read and which serves
	// the rules too, rather than a payload pruned to the rules' paths and
	// then the whole one for the hooks.
	HooksReadPayload bool
	// Handshake answers the requests some senders make before they deliver
	// (a challenge to echo). It is called for GET and HEAD requests before
	// verification, since senders do not sign those, and for other requests
	// after verification and body parsing. A request it answers (ok true)
	// is never stored nor emitted.
	Handshake func(req *Request) (reply Reply, ok bool)
	// DedupWindow is how long a delivery id is remembered: a delivery whose
	// id was accepted within the window is answered 200 and not emitted.
	DedupWindow time.Duration
	// DedupMemoryIDs bounds the newest delivery ids held in memory (about
	// 35 bytes each, twice while they are sealed); beyond it they are
	// sealed into a sorted file of the inbox, which costs about 1.4 bytes
	// an id of memory (its filter and index).
	DedupMemoryIDs int
	// MaxPending and MaxPendingBytes bound the deliveries stored (or,
	// with AckStream, held in memory) but not yet acknowledged by the
	// stream; beyond them deliveries get 503 with Retry-After and nothing
	// is stored.
	MaxPending      int
	MaxPendingBytes int64
	// RetryAfter is the delay a refused sender is asked to wait.
	RetryAfter time.Duration
	// AckMode says what a 2xx waits for; default AckInbox.
	AckMode AckMode
	// AckTimeout bounds the wait of AckStream.
	AckTimeout time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

func (c *Config) applyDefaults() {
	if len(c.Methods) == 0 {
		c.Methods = []string{http.MethodPost}
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if len(c.ContentTypes) == 0 {
		c.ContentTypes = DefaultContentTypes()
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.DedupMemoryIDs <= 0 {
		c.DedupMemoryIDs = DefaultDedupMemoryIDs
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.AckMode == "" {
		c.AckMode = AckInbox
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultAckTimeout
	}
}

// Request is a delivery as the DeliveryID and Handshake hooks see it.
type Request struct {
	// HTTP is the request; its body is already read.
	HTTP *http.Request
	// Body is the raw body.
	Body []byte
	// MediaType is the body's media type, without parameters.
	MediaType string

	payload any
	perr    error
	parsed  bool
	// pruned is the payload built for the rules' paths prunedBy
	// (decodeJSONPruned), apart from payload: hooks see whole payloads.
	pruned   any
	prunedBy *pathNode
}

// Payload returns the parsed body (see ParseBody), parsing it once.
func (r *Request) Payload() (any, error) {
	if !r.parsed {
		r.payload, r.perr = ParseBody(r.MediaType, r.Body)
		r.parsed = true
	}
	return r.payload, r.perr
}

// Reply is a handshake's answer.
type Reply struct {
	Status      int // 200 when zero
	ContentType string
	Body        []byte
}

// Source receives webhook deliveries on the sidecar's HTTP listener and
// hands them to the runtime as changes. A delivery is answered 2xx only
// once it is committed to the source's inbox, an append-only log in the
// connector's state directory: the inbox keeps it until the stream has it
// (Ack), and it is read again after any stop. See the package doc.
//
// Source implements every core.Source method except Configure, which the
// connector that builds it provides.
type Source struct {
	cfg        Config
	pathParams []string

	mu  sync.Mutex
	run *run
	met *metrics
	// paths are the payload paths the connector's rules read
	// (SetPayloadPaths); nil builds whole payloads.
	paths atomic.Pointer[pathNode]
}

// SetPayloadPaths makes the source build, from JSON bodies, only the parts
// of payloads that paths reach (see core.PayloadPruner), or whole payloads
// when all is true. A delivery parsed with other paths than the current
// ones is parsed again when it is read, so that the rules always see what
// they read. It is safe to call at any time.
func (s *Source) SetPayloadPaths(paths []core.PayloadPath, all bool) {
	if all {
		s.paths.Store(nil)
		return
	}
	s.paths.Store(newPathTree(paths))
}

var _ core.PayloadPruner = (*Source)(nil)

// NewSource returns a source for cfg. It does no I/O.
func NewSource(cfg Config) (*Source, error) {
	cfg.applyDefaults()
	if cfg.Path == "" || cfg.Path[0] != '/' {
		return nil, fmt.Errorf("webhook path %q must start with /", cfg.Path)
	}
	if cfg.AckMode != AckInbox && cfg.AckMode != AckStream {
		return nil, fmt.Errorf("webhook ack mode %q is not %q or %q", cfg.AckMode, AckInbox, AckStream)
	}
	return &Source{cfg: cfg, pathParams: pathParams(cfg.Path)}, nil
}

var wildcardRe = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(?:\.\.\.)?\}`)

func pathParams(pattern string) []string {
	var out []string
	for _, m := range wildcardRe.FindAllStringSubmatch(pattern, -1) {
		out = append(out, m[1])
	}
	return out
}

// run is the state of one Open..Close cycle.
type run struct {
	ib     *inbox
	log    *slog.Logger
	closed chan struct{}
	unmnt  func()

	// qmu guards the queue: what Read has not taken, in order. qlen
	// counts its deliveries, runs by their count; qmem is the memory its
	// records hold (record.memory), at most queueMemory past which stored
	// deliveries join spilled runs. tmu makes one taker at a time (Read,
	// Drain), the only ones to remove entries from the queue's head.
	qmu    sync.Mutex
	tmu    sync.Mutex
	queue  []qent
	qlen   int
	qmem   int64
	notify chan struct{}
	// queuedAt is when the oldest record in queue arrived; linger is how
	// long Read lets a short queue grow (see readLinger); lastRead is when
	// Read last returned changes (Read's goroutine only).
	queuedAt time.Time
	linger   time.Duration
	lastRead time.Time

	amu     sync.Mutex
	unacked []unacked

	pendingN atomic.Int64
	pendingB atomic.Int64

	// streamAck says AckMode is AckStream; flights are then the
	// deliveries held in memory for Read and not yet acknowledged, by id
	// (guarded by ib.dmu, with the dedup index they join once
	// acknowledged).
	streamAck bool
	flights   map[string]*flight
}

// The reasons a delivery of AckStream is not answered 2xx.
var (
	errAckTimeout = errors.New("delivery not on the stream in time")
	errSenderGone = errors.New("sender gone before the delivery was on the stream")
	errDropped    = errors.New("delivery dropped before it was read")
)

// unacked is a delivery Read returned and Ack has not covered yet: one
// of the inbox (seq) or, with AckStream, one held in memory (fl).
type unacked struct {
	id    string
	seq   uint64
	bytes int64
	fl    *flight
}

// push receives committed records from the inbox writer, and those of
// AckStream from admit.
func (r *run) push(recs ...*record) {
	r.enqueue(recs)
	r.wake()
}

// qent is an entry of the queue: a delivery held in memory, or (rec nil)
// a run of deliveries spilled to their segment.
type qent struct {
	rec *record
	run spillRun
}

// enqueue makes records visible to Read without waking it. A stored
// record joins a spilled run rather than the memory once the queue holds
// queueMemory, and as long as the queue ends in a run.
func (r *run) enqueue(recs []*record) {
	r.qmu.Lock()
	if r.qlen == 0 {
		r.queuedAt = time.Now()
	}
	for _, rec := range recs {
		r.qlen++
		last := len(r.queue) - 1
		spilling := last >= 0 && r.queue[last].rec == nil
		if rec.spillable() && (spilling || r.qmem+rec.memory() > queueMemory) {
			if !spilling || !r.queue[last].run.extend(rec) {
				r.queue = append(r.queue, qent{run: runOf(rec)})
			}
			continue
		}
		r.qmem += rec.memory()
		r.queue = append(r.queue, qent{rec: rec})
	}
	r.qmu.Unlock()
}

// enqueueRuns queues runs of spilled deliveries.
func (r *run) enqueueRuns(runs []spillRun) {
	r.qmu.Lock()
	if r.qlen == 0 && len(runs) > 0 {
		r.queuedAt = time.Now()
	}
	for _, run := range runs {
		r.queue = append(r.queue, qent{run: run})
		r.qlen += run.count
	}
	r.qmu.Unlock()
}

// wake wakes a Read waiting for records.
func (r *run) wake() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *run) reserve(n int64, maxN int, maxB int64) bool {
	if c := r.pendingN.Add(1); c > int64(maxN) {
		r.pendingN.Add(-1)
		return false
	}
	if b := r.pendingB.Add(n); b > maxB && b != n {
		// A single delivery larger than the byte bound still passes when
		// the inbox is empty, so that it can never be refused forever.
		r.pendingB.Add(-n)
		r.pendingN.Add(-1)
		return false
	}
	return true
}

func (r *run) release(n int64) {
	r.pendingN.Add(-1)
	r.pendingB.Add(-n)
}

// Open opens the inbox in env.StateDir, mounts the handler at the
// configured path on env.HTTP and starts accepting deliveries. Deliveries
// stored and not acknowledged before are read first, in order. A non-zero
// from is the committed checkpoint: stored deliveries up to it are already
// on the stream and are dropped.
func (s *Source) Open(ctx context.Context, env core.Env, from core.Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run != nil {
		return fmt.Errorf("open webhook source %q: already open", env.Name)
	}
	if env.HTTP == nil {
		return core.Fatal(fmt.Errorf("open webhook source %q: the sidecar runs no HTTP listener; set http.address in the configuration", env.Name))
	}
	if env.StateDir == "" {
		return core.Fatal(fmt.Errorf("open webhook source %q: no state directory for its inbox", env.Name))
	}
	if !from.IsZero() && from.Version != PositionVersion {
		return core.Fatal(fmt.Errorf("open webhook source %q: checkpoint %s has format version %d, want %d", env.Name, from, from.Version, PositionVersion))
	}
	logger := env.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ib, bl, err := openInboxLog(ctx, env.StateDir, s.cfg.DedupWindow, s.cfg.Now, s.cfg.DedupMemoryIDs, logger)
	if err != nil {
		return fmt.Errorf("open webhook source %q: %w", env.Name, err)
	}
	ib.log = logger
	if !from.IsZero() {
		if bl, err = ib.forget(ctx, bl, string(from.Data)); err != nil {
			_ = ib.close(ctx)
			return fmt.Errorf("open webhook source %q: %w", env.Name, err)
		}
	}
	r := &run{
		ib:        ib,
		log:       logger,
		closed:    make(chan struct{}),
		notify:    make(chan struct{}, 1),
		linger:    readLinger,
		streamAck: s.cfg.AckMode == AckStream,
	}
	if r.streamAck {
		// The answers wait for the stream: Read may not delay them.
		r.linger = 0
		r.flights = map[string]*flight{}
	}
	// Deliveries an earlier run stored (also with AckMode AckInbox, before
	// a change to AckStream) are read first and acknowledged in the inbox.
	r.enqueueRuns(bl.runs)
	r.pendingN.Store(int64(bl.n))
	r.pendingB.Store(bl.bytes)
	ib.onCommit = r.enqueue
	ib.onAnswered = r.wake
	ib.start()
	met := newMetrics(env.Metrics, env.Name, func() float64 { return float64(r.pendingN.Load()) })
	s.met = met
	unmount, err := env.HTTP.Handle(s.cfg.Path, &handler{s: s, r: r, m: met})
	if err != nil {
		_ = ib.close(ctx)
		met.close()
		return fmt.Errorf("open webhook source %q: mount path %q: %w", env.Name, s.cfg.Path, err)
	}
	r.unmnt = unmount
	s.run = r
	if bl.n > 0 {
		logger.Info("webhook inbox holds deliveries from before; reading them first", "deliveries", bl.n)
	}
	return nil
}

func (s *Source) current() (*run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run == nil {
		return nil, ErrClosed
	}
	return s.run, nil
}

// Read blocks until deliveries are stored and returns them as changes, in
// the order they were accepted: first those stored before Open (read back
// from the inbox's segments), then new ones. It returns ctx.Err() once ctx is done and ErrClosed after Close.
func (s *Source) Read(ctx context.Context) ([]core.Change, error) {
	r, err := s.current()
	if err != nil {
		return nil, err
	}
	var recs []*record
	for len(recs) == 0 {
		r.qmu.Lock()
		if n := r.qlen; n > 0 && n < readLimit && r.linger > 0 && time.Since(r.lastRead) < readBusy {
			if wait := time.Until(r.queuedAt.Add(r.linger)); wait > 0 {
				r.qmu.Unlock()
				if err := r.sleep(ctx, wait); err != nil {
					return nil, err
				}
				r.qmu.Lock()
			}
		}
		r.qmu.Unlock()
		if recs, _, err = r.take(readLimit); err != nil {
			return nil, err
		}
		if len(recs) > 0 {
			break
		}
		select {
		case <-r.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-r.closed:
			return nil, ErrClosed
		}
	}
	out := s.changes(r, recs)
	r.lastRead = time.Now()
	return out, nil
}

// take takes up to n deliveries from the head of the queue: those held
// in memory, up to the first run, or else the first of the run at the
// head, read back from its segment (readBack is then true). When reading
// back fails, nothing is taken: the next take tries again.
func (r *run) take(n int) (recs []*record, readBack bool, err error) {
	r.tmu.Lock()
	defer r.tmu.Unlock()
	r.qmu.Lock()
	if len(r.queue) == 0 {
		r.qmu.Unlock()
		return nil, false, nil
	}
	if r.queue[0].rec != nil {
		k := 0
		for k < len(r.queue) && k < n && r.queue[k].rec != nil {
			k++
		}
		recs = make([]*record, k)
		for i := range recs {
			rec := r.queue[i].rec
			recs[i] = rec
			r.qmem -= rec.memory()
			if rec.fl != nil {
				// Taken: its handler can no longer drop it.
				rec.fl.read = true
			}
		}
		r.dropHead(k)
		r.qlen -= k
		r.qmu.Unlock()
		return recs, false, nil
	}
	head := r.queue[0].run
	r.qmu.Unlock()
	k := min(n, head.count)
	recs, next, err := r.ib.rd.read(head, k)
	if err != nil {
		return nil, false, fmt.Errorf("read webhook deliveries: %w", err)
	}
	r.qmu.Lock()
	// Still the head: only a taker removes it; enqueue may have extended
	// it at its end meanwhile.
	h := &r.queue[0].run
	h.start, h.seq, h.count = next, h.seq+uint64(k), h.count-k
	if h.count == 0 {
		r.dropHead(1)
	}
	r.qlen -= k
	r.qmu.Unlock()
	return recs, true, nil
}

// dropHead removes the first k entries of the queue; r.qmu is held.
func (r *run) dropHead(k int) {
	rest := copy(r.queue, r.queue[k:])
	clear(r.queue[rest:])
	r.queue = r.queue[:rest]
}

// changes turns records taken from the queue into changes, and keeps them
// as unacknowledged until Ack.
func (s *Source) changes(r *run, recs []*record) []core.Change {
	out := make([]core.Change, len(recs))
	tree := s.paths.Load()
	r.amu.Lock()
	for i, rec := range recs {
		out[i] = rec.change(tree)
		r.unacked = append(r.unacked, unacked{id: rec.id, seq: rec.seq, bytes: int64(len(rec.body)), fl: rec.fl})
	}
	r.amu.Unlock()
	return out
}

// readLinger is how long Read lets a short queue of deliveries grow before
// it returns them, counted from the oldest one's commit. The answers do
// not wait for it (they follow the inbox's commit), only the events do; in
// exchange the runtime hands the stream batches several times larger, so
// the stream commits (and fsyncs) several times less often per event at a
// steady rate. Read lingers only while deliveries keep coming (it returned
// changes within readBusy): a delivery after a quiet spell is read at
// once, so it is on the stream before a stop that follows it. With AckMode
// AckStream Read does not linger. 10 ms rather than 2 gives the stream
// transactions several times larger under a closed loop of 64 senders (bench/webhook.sh embedded:inbox, side by
// side: 40–44 µs of CPU a delivery rather than 49, 26.9k–27.7k req/s
// rather than 25.0k–25.2k); 25 ms gained nothing more.
const (
	readLinger = 10 * time.Millisecond
	readBusy   = 20 * time.Millisecond
)

// sleep waits d; it returns ctx.Err() once ctx is done and ErrClosed when
// the run closes first.
func (r *run) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-r.closed:
		return ErrClosed
	}
}

// Ack releases the delivery at pos and every delivery read before it: they
// are marked acknowledged in the inbox (in the writer's next write) and no
// longer count against max_pending. With AckStream, those held in memory
// are answered 2xx and their ids join the dedup index (in memory at once,
// in the seen file in the writer's next write). It does not block on disk.
func (s *Source) Ack(_ context.Context, pos core.Position) error {
	r, err := s.current()
	if err != nil {
		return err
	}
	id := string(pos.Data)
	r.amu.Lock()
	idx := -1
	for i := range r.unacked {
		if r.unacked[i].id == id {
			idx = i
			break
		}
	}
	if idx < 0 {
		r.amu.Unlock()
		return fmt.Errorf("ack webhook delivery %s: not read, or already acknowledged", pos)
	}
	var n, b int64
	var seq uint64
	var landed []*flight
	for _, u := range r.unacked[:idx+1] {
		n++
		b += u.bytes
		if u.fl != nil {
			landed = append(landed, u.fl)
		} else {
			seq = max(seq, u.seq)
		}
	}
	rest := copy(r.unacked, r.unacked[idx+1:])
	clear(r.unacked[rest:])
	r.unacked = r.unacked[:rest]
	r.amu.Unlock()
	if len(landed) > 0 {
		r.land(landed)
	}
	r.pendingN.Add(-n)
	r.pendingB.Add(-b)
	if seq > 0 {
		r.ib.ack(seq)
	}
	return nil
}

// Close unmounts the handler (new requests are no longer accepted), lets the
// inbox writer finish its write, and closes the inbox, within ctx's
// deadline. Requests in flight get 503 unless their delivery was already
// committed. It is safe to call twice and after a failed Open.
func (s *Source) Close(ctx context.Context) error {
	s.mu.Lock()
	r := s.run
	s.run = nil
	met := s.met
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	r.unmnt()
	close(r.closed)
	err := r.ib.close(ctx)
	if met != nil {
		met.close()
	}
	if err != nil {
		return fmt.Errorf("close webhook source at %q: %w", s.cfg.Path, err)
	}
	return nil
}

// Status reports the inbox's depth, for the connector's status.
func (s *Source) Status() map[string]any {
	s.mu.Lock()
	r := s.run
	s.mu.Unlock()
	st := map[string]any{"path": s.cfg.Path, "open": r != nil, "ack": string(s.cfg.AckMode)}
	if r != nil {
		st["inbox_pending"] = r.pendingN.Load()
		st["inbox_pending_bytes"] = r.pendingB.Load()
		st["inbox_commits"] = r.ib.commits.Load()
		st["inbox_stored"] = r.ib.stored.Load()
		st["inbox_read_back"] = r.ib.rd.reads.Load()
		st["inbox_damaged"] = r.ib.damaged
	}
	return st
}

// Health returns nil while the source is open.
func (s *Source) Health(context.Context) error {
	_, err := s.current()
	return err
}

var (
	_ core.StatusReporter = (*Source)(nil)
	_ core.HealthChecker  = (*Source)(nil)
)

// change builds the core.Change of a stored delivery, its payload pruned
// to the paths of tree unless tree is nil (SetPayloadPaths). The same
// record always yields the same change for one tree, whether it comes
// from memory or from disk: a payload the handler pruned to another tree
// is parsed again, and a whole one serves any tree.
func (rec *record) change(tree *pathNode) core.Change {
	payload, perr, pruned := rec.payload, error(nil), rec.prunedBy != nil
	if !rec.parsed || (pruned && rec.prunedBy != tree) {
		payload, pruned, perr = parsePayload(rec.meta.ContentType, rec.body, tree)
	}
	meta := map[string]any{
		"headers":      orEmpty(rec.meta.Headers),
		"query":        orEmpty(rec.meta.Query),
		"path":         orEmpty(rec.meta.PathParams),
		"method":       commonValue(rec.meta.Method),
		"remote_addr":  rec.meta.RemoteAddr,
		"delivery_id":  rec.id,
		"content_type": commonValue(rec.meta.ContentType),
	}
	if perr != nil {
		// Bodies are checked before they are stored, so this happens only
		// when a parser changed between versions: the change still flows,
		// and rules or the dead-letter stream see why its payload is empty.
		meta["parse_error"] = perr.Error()
		payload, pruned = nil, false
	}
	return core.Change{
		Op:            core.OpMessage,
		Payload:       payload,
		PayloadPruned: pruned,
		Meta:          meta,
		Source: core.SourceInfo{
			System:     "webhook",
			Endpoint:   rec.meta.Path,
			CommitTime: rec.received,
		},
		Position: core.Position{Version: PositionVersion, Data: []byte(rec.id)},
		Raw:      rec.body,
	}
}

// commonValue returns s as an interface value, without allocating one for
// the methods and media types most deliveries carry: a constant converts
// to an interface in place.
func commonValue(s string) any {
	switch s {
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "application/json":
		return "application/json"
	case "application/x-www-form-urlencoded":
		return "application/x-www-form-urlencoded"
	}
	return s
}

// orEmpty returns m, or an empty map when m is nil, so that rules always
// find a map. The empty map is shared: a change is read-only once Read
// returns it (core.Change), so most deliveries, which have no query and no
// path parameters, cost no map of their own for them.
func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return noFields
	}
	return m
}

// noFields is the empty map orEmpty returns; nothing writes to it.
var noFields = map[string]any{}

// bodyID is the delivery id of a delivery whose sender gives none.
func bodyID(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// readBody reads at most limit bytes, sized by Content-Length when known.
func readBody(w http.ResponseWriter, req *http.Request, limit int64) ([]byte, error) {
	if cl := req.ContentLength; cl >= 0 && cl <= limit {
		// net/http's body stops at Content-Length, which is within the
		// limit: no MaxBytesReader is needed (nor allocated) to bound it.
		buf := make([]byte, cl)
		if _, err := io.ReadFull(req.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(http.MaxBytesReader(w, req.Body, limit))
}
