package runtime

import (
	"container/heap"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// This file is one session of a sink: Open, subscribe, the delivery loop,
// then drain and Close. One goroutine, the loop, owns every event read:
// it queues them per partition key, hands ready keys to Write calls (at
// most Concurrency at once, never two holding one key), and acks each
// message once its event is delivered, skipped or dead-lettered; the
// stream commits the low watermark of the acks. sinkresult.go holds what
// the loop does with the results of a Write.

// idleKeys is how many keys with no event a sink's loop keeps, so that
// the next event of a key finds its queue instead of making one.
const idleKeys = 1024

// sinkItem is one event read from the stream and not yet committed.
type sinkItem struct {
	msg      *message.Message
	ev       *core.Event // nil for a message that is not a CloudEvent
	data     any
	key      string
	appended time.Time
	// attempt counts the deliveries that failed and used up an entry of
	// the retry schedule.
	attempt int
	// failed is set by the first failed delivery: the item counts in
	// RetriesPending until it is delivered or dead-lettered.
	failed bool
	// done: acked; dead: handed to the dead-letter topic.
	done, dead bool
	// row is the item's row in the retry store when it was loaded from
	// there (0: read from the stream).
	row int64
}

// sinkKey is the queue of one partition key's events, in stream order.
type sinkKey struct {
	name  string
	items []*sinkItem
	// busy: a Write holds items[:sent].
	busy bool
	sent int
	// blocked counts the key's dead letters being published: later
	// events wait for them.
	blocked int
	// due is when the key may be delivered again after a retry result.
	due time.Time
	// queued: in the ready list; gen tells current heap entries from
	// stale ones.
	queued bool
	gen    int
	// parked: the key's events are in the retry store, stored of them;
	// items are those loaded from there, and events read meanwhile go to
	// the store behind them. park asks for the key to be parked once the
	// Write that holds it is handled.
	parked bool
	stored int
	park   bool
}

type writeResult struct {
	batch   []*sinkItem
	results []core.Result
	probe   bool
	// early: results a ReportingSink told before its Write returned; the
	// Write still runs.
	early bool
}

type dlJob struct {
	it      *sinkItem
	k       *sinkKey
	reason  string
	msg     *message.Message
	attempt int
	// timer publishes the dead letter again after a failure.
	timer *time.Timer
}

type dlResult struct {
	job *dlJob
	err error
}

// sinkLoop is the state of one session's delivery loop. Only the loop
// goroutine touches it, but for the channels.
type sinkLoop struct {
	s    *sinkRunner
	cfg  *Sink
	sink core.Sink
	pub  core.AsyncPublisher

	keys    map[string]*sinkKey
	ready   []*sinkKey
	waiting dueHeap
	timer   *time.Timer
	timerAt time.Time
	// unacked holds the items read, in arrival order; acked ones leave
	// from the front.
	unacked []*sinkItem
	// keyless numbers events without a partition key, each its own key.
	keyless uint64

	writes  int // Write calls in flight
	dls     int // dead-letter publishes in flight
	dlTimer map[*time.Timer]struct{}

	results chan writeResult
	// dlDone signals that dlMu's dlResults has news: a publisher's done
	// callback must not block on the loop, which may itself be waiting
	// in PublishAsync for the publisher's buffer.
	dlDone    chan struct{}
	dlMu      sync.Mutex
	dlResults []dlResult
	dlRetry   chan *dlJob
	// intake brings the messages read from the stream, as many as the
	// readers hold while the loop is busy, so that the loop handles them
	// and dispatches their Writes once per batch, not once per message.
	intake     chan []*message.Message
	ended      chan string
	stopIntake chan struct{}
	// done is closed when the loop has returned: callbacks arriving later
	// drop their news.
	done chan struct{}

	wctx      context.Context // of Write calls
	wcancel   context.CancelFunc
	pubCtx    context.Context // of dead-letter publishes
	pubCancel context.CancelFunc

	// store is the retry store, nil without a state directory.
	store *parkStore

	paused   bool
	stopping bool
	gone     error
	fatal    error
	// err ends the session with an error retried with backoff.
	err         error
	consecutive int
	circuit     string
	probeDelay  time.Duration
	probeTimer  *time.Timer
	probeDue    bool
	probing     bool
}

func newSinkLoop(s *sinkRunner) *sinkLoop {
	l := &sinkLoop{
		s:          s,
		cfg:        &s.cfg,
		sink:       s.cfg.Sink,
		pub:        s.r.publisher(),
		keys:       map[string]*sinkKey{},
		dlTimer:    map[*time.Timer]struct{}{},
		results:    make(chan writeResult),
		dlDone:     make(chan struct{}, 1),
		dlRetry:    make(chan *dlJob),
		intake:     make(chan []*message.Message),
		ended:      make(chan string),
		stopIntake: make(chan struct{}),
		done:       make(chan struct{}),
		circuit:    CircuitClosed,
		probeDelay: s.tuning.probe,
		timer:      time.NewTimer(time.Hour),
		probeTimer: time.NewTimer(time.Hour),
	}
	l.timer.Stop()
	l.probeTimer.Stop()
	l.wctx, l.wcancel = context.WithCancel(context.Background())
	l.pubCtx, l.pubCancel = context.WithCancel(context.Background())
	return l
}

// session opens the sink, subscribes it to its topics and delivers until
// an error or ctx is done, then drains and closes.
func (s *sinkRunner) session(ctx context.Context) error {
	s.setState(StateStarting, nil)
	env := core.Env{
		Name:     s.cfg.Name,
		Logger:   s.log,
		StateDir: SinkStateDir(s.r.opts.StateDir, s.cfg.Name),
		Admin:    s.r.opts.Admin,
		Metrics:  s.r.opts.Registerer,
	}
	if env.StateDir != "" {
		if err := os.MkdirAll(env.StateDir, 0o755); err != nil {
			return core.Fatal(fmt.Errorf("create state directory: %w", err))
		}
	}
	closeSink := func() {
		cctx, cancel := s.r.drainContext()
		defer cancel()
		if err := s.cfg.Sink.Close(cctx); err != nil {
			s.log.Warn("close sink", "err", err)
		}
	}
	if err := s.cfg.Sink.Open(ctx, env); err != nil {
		s.recordError(fmt.Errorf("open: %w", err))
		closeSink()
		return fmt.Errorf("open sink: %w", err)
	}
	var store *parkStore
	if env.StateDir != "" {
		var err error
		if store, err = openParkStore(ctx, env.StateDir); err != nil {
			closeSink()
			return err
		}
		prev := closeSink
		closeSink = func() {
			if err := store.close(); err != nil {
				s.log.Warn("close retry store", "err", err)
			}
			prev()
		}
	}
	group := SinkGroupPrefix + s.cfg.Name
	window := sinkWindow
	if w, ok := s.cfg.Sink.(core.WindowedSink); ok && w.StreamWindow() > window {
		window = w.StreamWindow()
	}
	sub, err := s.r.opts.Stream.Subscriber(core.SubscribeOptions{Group: group, From: s.cfg.From, Window: window})
	if err != nil {
		closeSink()
		return fmt.Errorf("subscribe consumer group %q: %w", group, err)
	}
	l := newSinkLoop(s)
	l.store = store
	if err := l.loadParked(ctx); err != nil {
		closeSink()
		return err
	}
	subCtx, cancelSub := context.WithCancel(context.Background())
	var readers sync.WaitGroup
	stop := func() {
		cancelSub()
		if err := sub.Close(); err != nil {
			s.log.Warn("close subscription", "err", err)
		}
		readers.Wait()
		closeSink()
	}
	failed := func(err error) error {
		close(l.stopIntake)
		l.wcancel()
		l.pubCancel()
		stop()
		return err
	}
	if ts, ok := sub.(core.TopicsSubscriber); ok && len(s.topics) > 1 {
		// One member of the group for every topic: the group is joined
		// once, and the topics start reading together.
		chs, err := ts.SubscribeTopics(subCtx, s.topics)
		if err != nil {
			return failed(fmt.Errorf("subscribe consumer group %q to topics %q: %w", group, s.topics, err))
		}
		for topic, ch := range chs {
			readers.Go(func() { l.read(topic, ch) })
		}
	} else {
		for _, topic := range s.topics {
			ch, err := sub.Subscribe(subCtx, topic)
			if err != nil {
				return failed(fmt.Errorf("subscribe consumer group %q to topic %q: %w", group, topic, err))
			}
			readers.Go(func() { l.read(topic, ch) })
		}
	}
	s.setState(StateRunning, nil)
	s.log.Info("sink running", "topics", s.topics, "group", group)
	err = l.run(ctx)
	stop()
	return err
}

// read hands the messages of one topic's subscription to the loop: it
// takes them as the subscription sends them and passes on what it holds
// whenever the loop is free, so that a busy loop gets them in batches. It
// holds no more than the subscription's window, which sends nothing
// further until the loop acks.
func (l *sinkLoop) read(topic string, ch <-chan *message.Message) {
	var held []*message.Message
	for ch != nil || len(held) > 0 {
		var send chan<- []*message.Message
		if len(held) > 0 {
			send = l.intake
		}
		select {
		case m, ok := <-ch:
			if !ok {
				ch = nil
				continue
			}
			held = append(held, m)
		case send <- held:
			held = nil
		case <-l.stopIntake:
			return
		}
	}
	select {
	case l.ended <- topic:
	case <-l.stopIntake:
	}
}

// run delivers until ctx is done, the target is gone, a fatal error or
// the end of a subscription; then it drains.
func (l *sinkLoop) run(ctx context.Context) error {
	gauges := time.NewTicker(time.Second)
	defer gauges.Stop()
	l.paused = l.s.isPaused()
	var err error
	// quick counts the turns in a row that took the quick select; every
	// quickMax turns the full one runs, so that a busy loop still sees
	// ctx, its timers and pause.
	const quickMax = 32
	quick := 0
	for err == nil {
		if l.gone != nil {
			err = l.gone
			break
		}
		if l.fatal != nil {
			err = l.fatal
			break
		}
		if l.err != nil {
			err = l.err
			break
		}
		l.dispatch()
		l.armTimer()
		var in <-chan []*message.Message
		if !l.paused {
			in = l.intake
		}
		if quick < quickMax {
			// While events and results keep coming, take them with a
			// select of their own: the full one below costs a lock and
			// a wait on each of its channels per event.
			quick++
			select {
			case ms := <-in:
				l.acceptAll(ms)
				continue
			case w := <-l.results:
				l.written(w)
				continue
			default:
			}
		}
		quick = 0
		select {
		case <-ctx.Done():
			l.drain()
			return nil
		case ms := <-in:
			l.acceptAll(ms)
		case w := <-l.results:
			l.written(w)
		case <-l.dlDone:
			l.deadLetteredAll()
		case j := <-l.dlRetry:
			l.publishDeadLetter(j)
		case <-l.timer.C:
			l.timerAt = time.Time{}
			l.wakeDue()
		case <-l.probeTimer.C:
			l.circuit, l.probeDue = CircuitHalfOpen, true
			l.s.setCircuit(CircuitHalfOpen, nil)
		case <-l.s.wake:
			l.paused = l.s.isPaused()
		case <-gauges.C:
			l.s.updateGauges()
		case topic := <-l.ended:
			err = fmt.Errorf("the stream ended the subscription to topic %q", topic)
		}
	}
	l.drain()
	return err
}

// drain stops intake and waits, within the drain deadline, for the Writes
// in flight (cancelling them halfway to the deadline) and the dead
// letters being published, then releases the session's resources. What
// is not acked by then is delivered again by the next session.
func (l *sinkLoop) drain() {
	l.stopping = true
	close(l.stopIntake)
	dctx, cancel := l.s.r.drainContext()
	defer cancel()
	half := time.Second
	if dl, ok := dctx.Deadline(); ok {
		half = time.Until(dl) / 2
	}
	wt := time.NewTimer(half)
	defer wt.Stop()
wait:
	for l.writes > 0 || l.dls > 0 {
		select {
		case w := <-l.results:
			l.written(w)
		case <-l.dlDone:
			l.deadLetteredAll()
		case <-wt.C:
			l.wcancel()
		case <-dctx.Done():
			l.s.log.Warn("sink stopped before its deliveries finished; they are delivered again after the next start", "writes", l.writes, "dead_letters", l.dls)
			break wait
		}
	}
	l.wcancel()
	l.pubCancel()
	for t := range l.dlTimer {
		t.Stop()
	}
	l.timer.Stop()
	l.probeTimer.Stop()
	close(l.done)
	l.s.lag.Store(0)
	l.s.oldest.Store(0)
	l.s.retriesPending.Store(0)
	l.s.updateGauges()
}

// acceptAll accepts ms in order, and stops at an error that ends the
// session: the messages not accepted are not acked, and the next session
// reads them again.
func (l *sinkLoop) acceptAll(ms []*message.Message) {
	for i, m := range ms {
		if l.err != nil || l.fatal != nil {
			return
		}
		l.accept(m)
		ms[i] = nil
	}
}

// accept takes a message from the stream: it skips it, dead-letters it or
// queues it behind its key.
func (l *sinkLoop) accept(m *message.Message) {
	it := &sinkItem{msg: m}
	ev, err := core.EventFromMessage(m)
	if err != nil {
		it.appended = time.Now()
		l.track(it)
		l.deadLetter(it, nil, SinkReasonInvalid, err, "")
		return
	}
	it.ev = ev
	it.appended = appendTime(ev)
	l.track(it)
	if !l.prepare(it) {
		return
	}
	it.key = ev.PartitionKey
	if it.key == "" {
		// An event without a key is in order with nothing: its own key.
		l.keyless++
		it.key = "\x00" + strconv.FormatUint(l.keyless, 10)
	}
	k := l.keys[it.key]
	if k == nil {
		k = &sinkKey{name: it.key}
		l.keys[it.key] = k
	} else if len(k.items) == 0 && !k.parked && !k.busy && k.blocked == 0 {
		// A key kept idle (see schedule) starts afresh.
		k.due = time.Time{}
	}
	if k.parked {
		// Behind the key's parked events, in the store.
		added, err := l.store.add(l.pubCtx, k.name, it)
		if err != nil {
			l.err = err
			return
		}
		if added {
			k.stored++
		}
		l.finish(it)
		return
	}
	k.items = append(k.items, it)
	if len(k.items) == 1 {
		// Otherwise the key is already busy, waiting, blocked or ready.
		l.schedule(k)
	}
}

// prepare applies the sink's types, filter and map to it: it reports
// whether it is to be delivered, and otherwise skips or dead-letters it.
func (l *sinkLoop) prepare(it *sinkItem) bool {
	ev := it.ev
	if !l.cfg.matchesType(ev.Type) {
		l.skip(it)
		return false
	}
	if f := l.cfg.Filter; f != nil {
		ok, err := f(ev)
		if err != nil {
			l.deadLetter(it, nil, SinkReasonFilter, err, "")
			return false
		}
		if !ok {
			l.skip(it)
			return false
		}
	}
	if mp := l.cfg.Map; mp != nil {
		d, err := mp(ev)
		if err != nil {
			l.deadLetter(it, nil, SinkReasonMap, err, "")
			return false
		}
		it.data = d
	}
	return true
}

// appendTime is when ev was appended to the stream, as far as the sink
// can tell: the streams do not tell a subscriber when they stored a
// message, so it is the event's time, or now for an event without one.
func appendTime(ev *core.Event) time.Time {
	if !ev.Time.IsZero() {
		return ev.Time
	}
	return time.Now()
}

// track counts it as read and not committed.
func (l *sinkLoop) track(it *sinkItem) {
	l.unacked = append(l.unacked, it)
	l.s.lag.Add(1)
	if len(l.unacked) == 1 {
		l.s.oldest.Store(it.appended.UnixNano())
	}
}

// finish acks it (the stream may commit past it), or removes it from the
// retry store when it came from there.
func (l *sinkLoop) finish(it *sinkItem) {
	it.done = true
	if it.failed {
		l.s.retriesPending.Add(-1)
	}
	if it.row != 0 {
		l.unstore(it)
		return
	}
	it.msg.Ack()
	l.s.lag.Add(-1)
	if len(l.unacked) == 0 || l.unacked[0] != it {
		return
	}
	for len(l.unacked) > 0 && l.unacked[0].done {
		l.unacked[0] = nil
		l.unacked = l.unacked[1:]
	}
	if len(l.unacked) == 0 {
		l.s.oldest.Store(0)
		l.unacked = nil
	} else {
		l.s.oldest.Store(l.unacked[0].appended.UnixNano())
	}
}

func (l *sinkLoop) skip(it *sinkItem) {
	l.s.skipped.Add(1)
	l.finish(it)
}

// schedule puts an idle key where it belongs: the ready list, the waiting
// heap until its due time, or nowhere when it is empty (it is forgotten).
func (l *sinkLoop) schedule(k *sinkKey) {
	if k.busy || k.blocked > 0 {
		return
	}
	if len(k.items) == 0 && !k.parked {
		if l.keys[k.name] == k {
			if len(l.keys) > idleKeys || strings.HasPrefix(k.name, "\x00") {
				// A keyless event's key never comes again.
				delete(l.keys, k.name)
			} else {
				// Kept for the key's next event, as if new: its heap
				// entries are void.
				k.gen++
			}
		}
		return
	}
	if time.Now().Before(k.due) {
		k.gen++
		heap.Push(&l.waiting, dueEntry{due: k.due, k: k, gen: k.gen})
		return
	}
	if !k.queued {
		k.queued = true
		l.ready = append(l.ready, k)
	}
}

// isReady reports whether k may be handed to a Write now.
func (l *sinkLoop) isReady(k *sinkKey, now time.Time) bool {
	return !k.busy && k.blocked == 0 && (len(k.items) > 0 || k.parked) && !now.Before(k.due) && l.keys[k.name] == k
}

// dispatch starts Writes while there are free slots and ready keys; with
// the circuit half open it sends one probe, and with it open nothing.
func (l *sinkLoop) dispatch() {
	if l.stopping || l.paused || l.gone != nil || l.fatal != nil {
		return
	}
	switch l.circuit {
	case CircuitOpen:
		return
	case CircuitHalfOpen:
		if l.probing || !l.probeDue {
			return
		}
		batch := l.nextBatch(1, 1)
		if batch == nil && l.wakeEarliest() {
			batch = l.nextBatch(1, 1)
		}
		if batch != nil {
			l.probing, l.probeDue = true, false
			l.write(batch, true)
		}
		return
	}
	for l.writes < l.cfg.Concurrency {
		// The ready keys are spread over the free Writes, so that a slow
		// key holds as few others as it can: one key a Write while there
		// are Writes enough, more once the keys outnumber them.
		free := l.cfg.Concurrency - l.writes
		batch := l.nextBatch(l.cfg.MaxBatch, (len(l.ready)+free-1)/free)
		if batch == nil {
			return
		}
		l.write(batch, false)
	}
}

// nextBatch takes up to n events of up to keys ready keys (at least
// one), each key's in order, and marks those keys busy.
func (l *sinkLoop) nextBatch(n, keys int) []*sinkItem {
	var batch []*sinkItem
	now := time.Now()
	taken := 0
	for len(l.ready) > 0 && len(batch) < n && taken < max(keys, 1) {
		k := l.ready[0]
		l.ready[0] = nil
		l.ready = l.ready[1:]
		k.queued = false
		if !l.isReady(k, now) {
			continue
		}
		if len(k.items) == 0 {
			// A parked key that is due: its next events come from the
			// store, no more than the batch takes, so that memory holds
			// only what is being delivered.
			if l.unpark(k, n-len(batch)); l.err != nil {
				break
			}
			if len(k.items) == 0 {
				// Those loaded were skipped or dead-lettered.
				l.schedule(k)
				continue
			}
		}
		take := min(len(k.items), n-len(batch))
		k.busy, k.sent = true, take
		batch = append(batch, k.items[:take]...)
		taken++
	}
	if len(l.ready) == 0 {
		l.ready = nil
	}
	return batch
}

// write calls the sink's Write with batch in a goroutine of its own.
func (l *sinkLoop) write(batch []*sinkItem, probe bool) {
	ds := make([]core.Delivery, len(batch))
	for i, it := range batch {
		ds[i] = core.Delivery{Event: it.ev, Data: it.data, Attempt: it.attempt, Position: it.msg.Metadata.Get(core.MetadataPosition)}
	}
	l.writes++
	go func() {
		var res []core.Result
		rs, ok := l.sink.(core.ReportingSink)
		if ok && !probe && len(batch) > 1 {
			rep := newReporter(l, batch)
			res = rs.WriteReporting(l.wctx, ds, rep.report)
			batch, res = rep.rest(res)
		} else {
			res = l.sink.Write(l.wctx, ds)
		}
		select {
		case l.results <- writeResult{batch: batch, results: res, probe: probe}:
		case <-l.done:
		}
	}()
}

// reporter passes the results a ReportingSink tells during a Write to
// the loop, a key at a time: once every delivery of a key in the batch
// has its result, the key's items go to the loop, which frees the key.
type reporter struct {
	l     *sinkLoop
	batch []*sinkItem
	mu    sync.Mutex
	res   []core.Result
	told  []bool
	left  map[string]int // per key, its deliveries in the batch not told
	ended bool
}

func newReporter(l *sinkLoop, batch []*sinkItem) *reporter {
	r := &reporter{l: l, batch: batch, res: make([]core.Result, len(batch)), told: make([]bool, len(batch)), left: map[string]int{}}
	for _, it := range batch {
		r.left[it.key]++
	}
	return r
}

// report takes the result of delivery i; when it is the last of its key,
// it sends the key's items and results to the loop.
func (r *reporter) report(i int, res core.Result) {
	r.mu.Lock()
	if r.ended || i < 0 || i >= len(r.batch) || r.told[i] {
		r.mu.Unlock()
		return
	}
	r.told[i], r.res[i] = true, res
	key := r.batch[i].key
	r.left[key]--
	if r.left[key] > 0 {
		r.mu.Unlock()
		return
	}
	var w writeResult
	w.early = true
	for j, it := range r.batch {
		if it.key == key {
			w.batch = append(w.batch, it)
			w.results = append(w.results, r.res[j])
		}
	}
	r.mu.Unlock()
	select {
	case r.l.results <- w:
	case <-r.l.done:
	}
}

// rest returns the items of the batch whose keys were not sent early and
// their results, from res, what the Write returned.
func (r *reporter) rest(res []core.Result) ([]*sinkItem, []core.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = true
	var wrong error
	if len(res) != len(r.batch) {
		// The early results stand; the others are tried again.
		wrong = fmt.Errorf("sink %q returned %d results for %d deliveries; a sink returns one result per delivery", r.l.cfg.Name, len(res), len(r.batch))
	}
	var items []*sinkItem
	var out []core.Result
	for j, it := range r.batch {
		if r.left[it.key] == 0 {
			continue
		}
		items = append(items, it)
		switch {
		case r.told[j]:
			out = append(out, r.res[j])
		case wrong != nil:
			out = append(out, core.Result{Status: core.StatusRetry, Err: wrong})
		default:
			out = append(out, res[j])
		}
	}
	return items, out
}

// armTimer sets the retry timer to the earliest due time of the waiting
// keys.
func (l *sinkLoop) armTimer() {
	for l.waiting.Len() > 0 && !l.validWait(l.waiting[0]) {
		heap.Pop(&l.waiting)
	}
	if l.waiting.Len() == 0 {
		if !l.timerAt.IsZero() {
			l.timer.Stop()
			l.timerAt = time.Time{}
		}
		return
	}
	at := l.waiting[0].due
	if at.Equal(l.timerAt) {
		return
	}
	l.timer.Reset(time.Until(at))
	l.timerAt = at
}

func (l *sinkLoop) validWait(e dueEntry) bool {
	return e.gen == e.k.gen && !e.k.busy && l.keys[e.k.name] == e.k
}

// wakeDue moves the keys whose due time has come to the ready list.
func (l *sinkLoop) wakeDue() {
	now := time.Now()
	for l.waiting.Len() > 0 && !l.waiting[0].due.After(now) {
		e := heap.Pop(&l.waiting).(dueEntry)
		if l.validWait(e) {
			e.k.gen++
			l.schedule(e.k)
		}
	}
}

// wakeEarliest makes the waiting key with the earliest due time ready now,
// for a probe of an open circuit when no key is ready. It reports whether
// there was one.
func (l *sinkLoop) wakeEarliest() bool {
	for l.waiting.Len() > 0 {
		e := heap.Pop(&l.waiting).(dueEntry)
		if l.validWait(e) {
			e.k.gen++
			e.k.due = time.Time{}
			l.schedule(e.k)
			return true
		}
	}
	return false
}

// wakeAll makes every waiting key ready now: the circuit closed, and what
// waited for the target goes at once.
func (l *sinkLoop) wakeAll() {
	for l.waiting.Len() > 0 {
		e := heap.Pop(&l.waiting).(dueEntry)
		if l.validWait(e) {
			e.k.gen++
			e.k.due = time.Time{}
			l.schedule(e.k)
		}
	}
}

// dueEntry is a key waiting until due.
type dueEntry struct {
	due time.Time
	k   *sinkKey
	gen int
}

// dueHeap orders waiting keys by due time.
type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = dueEntry{}
	*h = old[:len(old)-1]
	return e
}
