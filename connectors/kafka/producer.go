package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// producer is the stream's idempotent producer. It gathers records into
// the record batch of their partition and sends the batches of the
// partitions a broker leads in one produce request (acks from all in-sync
// replicas). Requests are pipelined on the broker's connection, up to
// maxRequests in flight, but a partition has one batch in flight at a
// time, so that its next batch forms while the previous one is answered.
//
// Idempotence: the producer holds a producer id from the brokers and numbers
// the records of each partition. A batch keeps its numbers across retries,
// so a batch whose answer was lost (a cut connection, a timeout) and that is
// sent again is stored once; one batch per partition is in flight, so
// records of a partition are stored in the order they were enqueued. After
// a sequence error, or after giving up on a batch whose outcome is unknown,
// the producer waits until nothing is in flight, takes a new producer id
// and numbers the remaining batches afresh.
//
// Metadata (partitions, leaders, broker addresses) and producer ids come
// from sarama's client. Produce requests are sarama's: its RecordBatch
// encoding, and its Broker connections (ApiVersions negotiation, TLS,
// SASL), one per broker the producer opens itself with AsyncProduce.
type producer struct {
	client sarama.Client
	sc     *sarama.Config
	log    *slog.Logger
	opts   producerOptions

	ctx    context.Context // ends when the producer stops
	cancel context.CancelFunc

	mu       sync.Mutex
	topics   map[string][]*partition
	checked  map[string]time.Time // when each topic's partition count was read
	senders  map[int32]*sender
	pid      int64
	epoch    int16
	resetPID bool                  // take a new producer id once nothing is in flight
	inflight int                   // batches sent and not yet answered
	buffered int                   // bytes of records enqueued and not yet finished
	space    chan struct{}         // closed, then replaced, whenever buffered drops
	flushing bool                  // closing: send every batch without lingering
	drained  chan struct{}         // closed once flushing and nothing is buffered
	stopped  bool                  // closed: give up instead of retrying
	next     uint32                // partition of the next record without a key
	headers  []sarama.RecordHeader // one record's headers, views of the caller's
	scratch  []byte                // bytes of a header the caller formats

	free      []*batch // finished batches kept for reuse
	freeBytes int

	metaWake chan struct{}
	wg       sync.WaitGroup // senders
	metrics  *producerMetrics

	// bsc configures the producer's broker connections: sc, with the
	// connection made by dial.
	bsc *sarama.Config
	// dial opens the network connection to a broker (TLS and SASL then
	// go over it): a net.Dialer, or a test's stand-in. Guarded by mu.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// producerOptions are the producer's settings, taken from the client
// configuration.
type producerOptions struct {
	clientID      string
	acks          int16
	timeout       time.Duration
	linger        time.Duration
	flushBytes    int // with a linger, send a batch at this many bytes
	flushMessages int // with a linger, send a batch at this many records
	maxBatchBytes int
	bufferBytes   int // enqueuing waits above this many buffered bytes
	codec         sarama.CompressionCodec
	level         int
	maxRetries    int
	backoff       func(retries int) time.Duration
	version       int16 // of produce requests, before the broker's ApiVersions narrow it
	maxRequests   int   // produce requests in flight per broker
}

// maxRequestsPerBroker bounds the produce requests in flight on one
// broker connection. Each partition has at most one batch in flight, so
// pipelining only overlaps requests of different partitions, and five is
// the most an idempotent producer may have.
const maxRequestsPerBroker = 5

// defaultBufferBytes bounds the records enqueued and not yet acknowledged:
// enough to keep a request of full batches in flight and the next one
// forming, small enough that a broker outage holds callers back early.
// Batch buffers up to as many bytes are kept for reuse.
const defaultBufferBytes = 8 << 20

func producerOptionsOf(sc *sarama.Config) producerOptions {
	o := producerOptions{
		clientID:      sc.ClientID,
		acks:          int16(sc.Producer.RequiredAcks),
		timeout:       sc.Producer.Timeout,
		linger:        sc.Producer.Flush.Frequency,
		flushBytes:    sc.Producer.Flush.Bytes,
		flushMessages: sc.Producer.Flush.Messages,
		maxBatchBytes: sc.Producer.MaxMessageBytes,
		bufferBytes:   max(defaultBufferBytes, 4*sc.Producer.MaxMessageBytes),
		codec:         sc.Producer.Compression,
		level:         sc.Producer.CompressionLevel,
		maxRetries:    sc.Producer.Retry.Max,
		version:       produceVersion(sc.Version),
		maxRequests:   maxRequestsPerBroker,
	}
	backoff := sc.Producer.Retry.BackoffFunc
	o.backoff = func(retries int) time.Duration {
		if backoff != nil {
			return backoff(retries, o.maxRetries)
		}
		return sc.Producer.Retry.Backoff
	}
	return o
}

// produceVersion returns the newest produce request version that sarama
// encodes and a broker of version v (the oldest in the cluster, as
// configured) accepts; a broker's ApiVersions answer lowers it further
// when that broker is older. Record batches need version 3.
func produceVersion(v sarama.KafkaVersion) int16 {
	for _, pv := range []struct {
		since   sarama.KafkaVersion
		version int16
	}{
		{sarama.V3_7_0_0, 10}, {sarama.V2_8_0_0, 9}, {sarama.V2_4_0_0, 8},
		{sarama.V2_1_0_0, 7}, {sarama.V2_0_0_0, 6}, {sarama.V1_0_0_0, 5},
	} {
		if v.IsAtLeast(pv.since) {
			return pv.version
		}
	}
	return 3
}

// partition is the producer's state of one topic partition. Guarded by
// producer.mu.
type partition struct {
	topic    string
	id       int32
	leader   int32    // broker id; -1 while unknown
	open     *batch   // the batch records are appended to
	ready    []*batch // sealed batches, oldest first; ready[0] may be in flight
	inflight bool
	nextSeq  int32
	retries  int // of ready[0]
	retryAt  time.Time
	// poisoned counts the calls that failed on the partition and whose
	// done has not returned; meanwhile records enqueued for it fail with
	// failure (see ordering.go).
	poisoned int
	failure  error
}

// seal closes the open batch: later records go to a new one.
func (pt *partition) seal() {
	if pt.open != nil {
		pt.ready = append(pt.ready, pt.open)
		pt.open = nil
	}
}

// batchAck counts the records of a batch that belong to one call.
type batchAck struct {
	c *call
	n int
}

// completion is the outcome of some of a call's records.
type completion struct {
	c   *call
	n   int
	err error
}

// initPIDWait bounds how long opening waits for a producer id while the
// brokers answer that they cannot give one yet.
const initPIDWait = 30 * time.Second

// initProducerID asks for a producer id, retrying with backoff while the
// brokers answer with a retriable error (a fresh cluster's transaction
// coordinator still loading, a coordinator moving), until ctx ends or
// initPIDWait passes.
func initProducerID(ctx context.Context, client sarama.Client) (*sarama.InitProducerIDResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, initPIDWait)
	defer cancel()
	backoff := 50 * time.Millisecond
	for {
		resp, err := client.InitProducerID()
		if err == nil && resp.Err != sarama.ErrNoError {
			err = resp.Err
		}
		if err == nil {
			return resp, nil
		}
		switch {
		case errors.Is(err, sarama.ErrOffsetsLoadInProgress),
			errors.Is(err, sarama.ErrConsumerCoordinatorNotAvailable),
			errors.Is(err, sarama.ErrNotCoordinatorForConsumer),
			errors.Is(err, sarama.ErrConcurrentTransactions),
			errors.Is(err, sarama.ErrRequestTimedOut):
		default:
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (still after %s)", err, initPIDWait)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

func newProducer(ctx context.Context, client sarama.Client, sc *sarama.Config, log *slog.Logger, metrics *producerMetrics) (*producer, error) {
	resp, err := initProducerID(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("get an idempotent producer id: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &producer{
		client:   client,
		sc:       sc,
		log:      log,
		opts:     producerOptionsOf(sc),
		ctx:      ctx,
		cancel:   cancel,
		topics:   map[string][]*partition{},
		checked:  map[string]time.Time{},
		senders:  map[int32]*sender{},
		pid:      resp.ProducerID,
		epoch:    resp.ProducerEpoch,
		space:    make(chan struct{}),
		drained:  make(chan struct{}),
		metaWake: make(chan struct{}, 1),
		metrics:  metrics,
	}
	d := &net.Dialer{Timeout: sc.Net.DialTimeout, KeepAlive: sc.Net.KeepAlive}
	p.dial = d.DialContext
	bsc := *sc
	bsc.Net.MaxOpenRequests = p.opts.maxRequests
	// sarama's own idempotent producer allows one request in flight; this
	// producer numbers its batches itself and keeps one per partition in
	// flight, which is what idempotence needs.
	bsc.Producer.Idempotent = false
	bsc.Net.Proxy.Enable = true
	bsc.Net.Proxy.Dialer = producerDialer{p}
	p.bsc = &bsc
	go p.runMeta()
	return p, nil
}

// partitions returns the partitions of topic, learning them on first use
// and looking for added ones once per metadata refresh interval.
func (p *producer) partitions(topic string) ([]*partition, error) {
	now := time.Now()
	p.mu.Lock()
	parts, checked := p.topics[topic], p.checked[topic]
	p.mu.Unlock()
	if parts != nil && (p.sc.Metadata.RefreshFrequency <= 0 || now.Sub(checked) < p.sc.Metadata.RefreshFrequency) {
		return parts, nil
	}
	ids, err := p.client.Partitions(topic)
	if err != nil {
		if parts != nil {
			return parts, nil // keep what is known; the next call looks again
		}
		return nil, fmt.Errorf("list partitions of kafka topic %q: %w", topic, err)
	}
	n := int32(0)
	for _, id := range ids {
		n = max(n, id+1)
	}
	if n == 0 {
		return nil, fmt.Errorf("list partitions of kafka topic %q: none", topic)
	}
	leaders := make([]*sarama.Broker, n)
	for i := int32(len(parts)); i < n; i++ {
		if b, err := p.client.Leader(topic, i); err == nil {
			leaders[i] = b
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checked[topic] = now
	parts = p.topics[topic]
	if int(n) <= len(parts) {
		return parts, nil
	}
	grown := make([]*partition, n)
	copy(grown, parts)
	for i := len(parts); i < int(n); i++ {
		grown[i] = &partition{topic: topic, id: int32(i), leader: -1}
		if b := leaders[i]; b != nil {
			grown[i].leader = b.ID()
			p.ensureSender(b)
		}
	}
	p.topics[topic] = grown
	return grown, nil
}

// reserve waits until size more bytes fit the buffer (or ctx ends, or
// abort is closed), then calls add with the producer locked, and wakes the
// senders that have work.
func (p *producer) reserve(ctx context.Context, abort <-chan struct{}, size int, add func(wake *wakeSet)) error {
	for {
		p.mu.Lock()
		if p.stopped || p.flushing {
			p.mu.Unlock()
			return ErrClosed
		}
		if p.buffered == 0 || p.buffered+size <= p.opts.bufferBytes {
			// Under the lock that guards the partitions' poison: a
			// caller that cancels ctx in a failing done sees nothing
			// it enqueues afterwards stored (see ordering.go).
			if err := ctx.Err(); err != nil {
				p.mu.Unlock()
				return err
			}
			var w wakeSet
			add(&w)
			p.mu.Unlock()
			w.wake(p)
			return nil
		}
		space := p.space
		p.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-abort:
			return ErrClosed
		case <-p.ctx.Done():
			return ErrClosed
		}
	}
}

// wakeSet collects the brokers that got records, to wake their senders once
// the producer is unlocked, and the records refused before sending, to
// report once it is unlocked.
type wakeSet struct {
	brokers []int32
	meta    bool
	refused []completion
}

func (w *wakeSet) add(broker int32) {
	if broker < 0 {
		w.meta = true
		return
	}
	for _, b := range w.brokers {
		if b == broker {
			return
		}
	}
	w.brokers = append(w.brokers, broker)
}

func (w *wakeSet) wake(p *producer) {
	if len(w.brokers) > 0 {
		p.mu.Lock()
		for _, id := range w.brokers {
			if s := p.senders[id]; s != nil {
				s.signal()
			}
		}
		p.mu.Unlock()
	}
	if w.meta {
		p.wakeMeta()
	}
	if len(w.refused) > 0 {
		// Not on the caller's goroutine: it may hold what done takes.
		refused := w.refused
		go func() {
			for _, r := range refused {
				r.c.ackN(r.n, r.err)
			}
		}()
	}
}

// add appends one record to the batch of its partition among parts: its
// headers are copied, its key and value referenced until the record's
// call is done (the caller does not change them meanwhile). A record for a poisoned partition, or
// larger than a batch may be, is not appended: w reports it failed, and
// the record poisons its partition. Called with p.mu held.
func (p *producer) add(parts []*partition, key, value []byte, headers []sarama.RecordHeader, ts int64, now time.Time, c *call, w *wakeSet) {
	var pt *partition
	if key != nil {
		pt = parts[int32(murmur2(key)&0x7fffffff)%int32(len(parts))]
	} else {
		p.next++
		pt = parts[p.next%uint32(len(parts))]
	}
	if pt.poisoned > 0 {
		p.poison(pt, c, nil)
		w.refuse(c, pt.failure)
		return
	}
	hlen := headersLen(headers)
	if size, refused := p.tooLarge(key, value, len(headers), hlen); refused {
		err, cause := tooLargeError(pt, size, p.opts.maxBatchBytes)
		p.poison(pt, c, cause)
		w.refuse(c, err)
		return
	}
	b := pt.open
	if b == nil {
		b = p.newBatch(ts, now)
		pt.open = b
	}
	_, total := recordLen(b.n, ts-b.firstTS, key, value, len(headers), hlen)
	if b.n > 0 && batchOverhead+b.size+total > p.opts.maxBatchBytes {
		pt.seal()
		b = p.newBatch(ts, now)
		pt.open = b
		_, total = recordLen(0, 0, key, value, len(headers), hlen)
	}
	b.add(key, value, headers, ts, true)
	b.size += total
	p.buffered += total
	if k := len(b.acks); k > 0 && b.acks[k-1].c == c {
		b.acks[k-1].n++
	} else {
		b.acks = append(b.acks, batchAck{c: c, n: 1})
	}
	if p.opts.linger > 0 && (p.opts.flushMessages > 0 && int(b.n) >= p.opts.flushMessages ||
		p.opts.flushBytes > 0 && b.size >= p.opts.flushBytes) {
		pt.seal()
	}
	w.add(pt.leader)
}

// newBatch returns an empty batch, a recycled one when there is one.
// Called with p.mu held.
func (p *producer) newBatch(ts int64, now time.Time) *batch {
	var b *batch
	if n := len(p.free); n > 0 {
		b = p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.freeBytes -= b.data.capacity()
	} else {
		b = &batch{}
	}
	b.firstTS, b.maxTS, b.created = ts, ts, now
	return b
}

// recycle keeps b for a later batch, while the batches kept hold less
// than the buffer's bound: their arenas have grown to the size batches
// take, so reusing them saves growing new ones. Called with p.mu held,
// once nothing reads b any more.
func (p *producer) recycle(b *batch) {
	if p.freeBytes+b.data.capacity() > p.opts.bufferBytes {
		return
	}
	clear(b.acks)
	clear(b.rb.Records)
	b.records.reset(true)
	b.headers.reset(true)
	b.hptrs.reset(true)
	b.data.reset(false)
	*b = batch{
		rb:   sarama.RecordBatch{Records: b.rb.Records[:0]},
		acks: b.acks[:0], records: b.records, headers: b.headers, hptrs: b.hptrs, data: b.data,
	}
	p.free = append(p.free, b)
	p.freeBytes += b.data.capacity()
}

// sender writes the produce requests of one broker.
type sender struct {
	id      int32
	addr    string // guarded by producer.mu
	wake    chan struct{}
	answers chan answer // of the requests in flight; never blocks a sender

	connMu sync.Mutex
	conn   *sarama.Broker // nil until the next request connects

	// Used by the sender's goroutine only.
	inflight  int       // requests sent and not yet answered
	throttled time.Time // the broker asked for no request before then
}

// request is one produce request: the partitions it sends a batch of, and
// those batches (ready[0] of each).
type request struct {
	sent    []*partition
	batches []*batch
	conn    *sarama.Broker
	start   time.Time
}

// answer is the outcome of a request: the broker's response, or err when
// none came.
type answer struct {
	r    *request
	resp *sarama.ProduceResponse
	err  error
}

func (s *sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// ensureSender starts the sender of broker b unless it runs. Called with
// p.mu held.
func (p *producer) ensureSender(b *sarama.Broker) {
	if s, ok := p.senders[b.ID()]; ok {
		s.addr = b.Addr() // a broker may come back at another address
		return
	}
	if p.stopped {
		return
	}
	s := &sender{id: b.ID(), addr: b.Addr(), wake: make(chan struct{}, 1), answers: make(chan answer, p.opts.maxRequests)}
	p.senders[s.id] = s
	p.wg.Add(1)
	go p.runSender(s)
}

// runSender sends the requests of s's broker as batches are ready, up to
// maxRequests in flight, and handles their answers, all on one goroutine:
// sarama's callbacks only pass the answers on.
func (p *producer) runSender(s *sender) {
	defer p.wg.Done()
	// Requests unanswered at close are no longer in flight for the
	// gauge, which a reopened stream keeps counting on.
	defer func() { p.metrics.inflight(-s.inflight) }()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if p.ctx.Err() != nil {
			return
		}
		var r *request
		wait := time.Hour
		now := time.Now()
		if now.Before(s.throttled) {
			wait = s.throttled.Sub(now)
		} else if s.inflight < p.opts.maxRequests {
			p.mu.Lock()
			r, wait = p.collect(s, now)
			addr := s.addr
			p.mu.Unlock()
			if r != nil {
				s.inflight++
				p.metrics.inflight(1)
				p.produce(s, r, addr)
				continue
			}
		}
		timer.Reset(wait)
		select {
		case a := <-s.answers:
			s.inflight--
			p.metrics.inflight(-1)
			for _, c := range p.handle(s, a) {
				c.c.ackN(c.n, c.err)
			}
		case <-s.wake:
		case <-timer.C:
		case <-p.ctx.Done():
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// collect picks, for each partition s's broker leads, the batch to send
// next, and gives each its sequence numbers on its first send. It returns
// the request of those batches, or nil and how long to wait when there is
// none. Called with p.mu held.
func (p *producer) collect(s *sender, now time.Time) (*request, time.Duration) {
	wait := time.Hour
	if p.resetPID {
		return nil, wait // woken once the new producer id is there
	}
	var r *request
	size := 0
	for _, parts := range p.topics {
		for _, pt := range parts {
			if pt.leader != s.id || pt.inflight {
				continue
			}
			if now.Before(pt.retryAt) {
				wait = min(wait, pt.retryAt.Sub(now))
				continue
			}
			if len(pt.ready) == 0 && pt.open != nil {
				if due := pt.open.created.Add(p.opts.linger); p.opts.linger > 0 && !p.flushing && now.Before(due) {
					wait = min(wait, due.Sub(now))
					continue
				}
				pt.seal()
			}
			if len(pt.ready) == 0 {
				continue
			}
			b := pt.ready[0]
			if r != nil && size+b.size > p.opts.maxBatchBytes*4 {
				wait = 0
				continue
			}
			if !b.hasSeq {
				b.hasSeq, b.pid, b.epoch, b.seq = true, p.pid, p.epoch, pt.nextSeq
				pt.nextSeq = addSeq(pt.nextSeq, b.n)
			}
			pt.inflight = true
			p.inflight++
			size += b.size
			if r == nil {
				r = &request{}
			}
			r.sent = append(r.sent, pt)
			r.batches = append(r.batches, b)
		}
	}
	return r, wait
}

// addSeq advances a sequence number by n; numbers wrap to 0 past the
// largest int32, as brokers expect.
func addSeq(seq, n int32) int32 {
	if seq > math.MaxInt32-n {
		return n - (math.MaxInt32 - seq) - 1
	}
	return seq + n
}

// producerDialer opens the producer's broker connections with its dial.
type producerDialer struct{ p *producer }

// Dial connects to addr, bounded by the producer's lifetime.
func (d producerDialer) Dial(network, addr string) (net.Conn, error) {
	d.p.mu.Lock()
	dial := d.p.dial
	d.p.mu.Unlock()
	return dial(d.p.ctx, network, addr)
}

// connect returns s's connection to its broker at addr, opening it (TLS,
// SASL and version negotiation included) when there is none.
func (p *producer) connect(s *sender, addr string) (*sarama.Broker, error) {
	s.connMu.Lock()
	conn := s.conn
	s.connMu.Unlock()
	if conn != nil {
		return conn, nil
	}
	b := sarama.NewBroker(addr)
	if err := b.Open(p.bsc); err != nil {
		return nil, err
	}
	if ok, err := b.Connected(); !ok {
		_ = b.Close()
		if err == nil {
			err = sarama.ErrNotConnected
		}
		return nil, describeConnectError(err)
	}
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if p.ctx.Err() != nil {
		_ = b.Close()
		return nil, ErrClosed
	}
	s.conn = b
	return b, nil
}

// produce sends the batches of r; its answer comes to s.answers.
func (p *producer) produce(s *sender, r *request, addr string) {
	conn, err := p.connect(s, addr)
	if err != nil {
		s.answers <- answer{r: r, err: fmt.Errorf("connect to kafka broker %d at %s: %w", s.id, addr, err)}
		return
	}
	r.conn = conn
	req := &sarama.ProduceRequest{
		RequiredAcks: sarama.RequiredAcks(p.opts.acks),
		Timeout:      int32(p.opts.timeout.Milliseconds()),
		Version:      p.opts.version,
	}
	records := 0
	for i, pt := range r.sent {
		b := r.batches[i]
		b.seal(p.opts.codec, p.opts.level)
		req.AddBatch(pt.topic, pt.id, &b.rb)
		records += int(b.n)
		p.metrics.batch(int(b.n))
	}
	r.start = time.Now()
	err = conn.AsyncProduce(req, func(resp *sarama.ProduceResponse, err error) {
		if err != nil {
			err = fmt.Errorf("produce to kafka broker %d at %s: %w", s.id, addr, err)
		}
		s.answers <- answer{r: r, resp: resp, err: err}
	})
	if err != nil {
		s.answers <- answer{r: r, err: fmt.Errorf("produce to kafka broker %d at %s: %w", s.id, addr, err)}
	}
}

// handle applies the answer to its request and returns the completions
// to report once unlocked.
func (p *producer) handle(s *sender, a answer) []completion {
	err := a.err
	if err != nil {
		s.closeConn(a.r.conn)
	}
	now := time.Now()
	if a.resp != nil {
		p.metrics.answered(now.Sub(a.r.start), a.resp.ThrottleTime)
		if a.resp.ThrottleTime > 0 {
			// The broker holds back its answers to the next requests
			// as long; sending them meanwhile would only queue them.
			s.throttled = now.Add(a.resp.ThrottleTime)
		}
	}
	var done []completion
	p.mu.Lock()
	defer p.mu.Unlock()
	before := p.buffered
	meta := false
	for _, pt := range a.r.sent {
		pt.inflight = false
		p.inflight--
		b := pt.ready[0]
		perr, retriable, refresh := err, true, true
		if err == nil {
			perr, retriable, refresh = resultOf(a.resp, pt)
		}
		if perr == nil {
			done = p.finish(pt, done, nil)
			continue
		}
		if hint, refused := refusal(perr); refused && err == nil {
			pt.nextSeq = b.seq // refused: its numbers are free again
			if b.n > 1 {
				p.split(pt)
				continue
			}
			rerr, cause := refusedError(pt, s.id, batchOverhead+b.size, perr, hint)
			done = p.fail(pt, done, rerr, cause)
			continue
		}
		if errors.Is(perr, sarama.ErrOutOfOrderSequenceNumber) || errors.Is(perr, sarama.ErrUnknownProducerID) ||
			errors.Is(perr, sarama.ErrInvalidProducerEpoch) || errors.Is(perr, sarama.ErrProducerFenced) {
			p.resetPID = true
		}
		wrapped := fmt.Errorf("publish to kafka topic %q partition %d: %w", pt.topic, pt.id, perr)
		if retriable && pt.retries < p.opts.maxRetries && !p.stopped {
			pt.retries++
			p.metrics.retry()
			pt.retryAt = now.Add(p.opts.backoff(pt.retries))
			if refresh {
				pt.leader = -1
				meta = true
			}
			if pt.retries == 1 {
				p.log.Warn("kafka publish failed; retrying", "topic", pt.topic, "partition", pt.id, "records", b.n, "err", perr)
			}
			continue
		}
		if retriable {
			// The batch may or may not be stored under its numbers: a
			// new producer id keeps later batches from being taken for
			// duplicates of it.
			p.resetPID = true
		} else {
			pt.nextSeq = b.seq // refused: its numbers are free again
		}
		done = p.fail(pt, done, wrapped, perr)
	}
	if p.buffered < before {
		close(p.space)
		p.space = make(chan struct{})
		if p.flushing && p.buffered == 0 {
			close(p.drained)
		}
	}
	if meta || p.resetPID && p.inflight == 0 {
		p.wakeMeta()
	}
	return done
}

// finish removes the first ready batch of pt, reporting err for its
// records. Called with p.mu held.
func (p *producer) finish(pt *partition, done []completion, err error) []completion {
	b := pt.ready[0]
	pt.ready[0] = nil
	pt.ready = pt.ready[1:]
	if len(pt.ready) == 0 {
		pt.ready = pt.ready[:0:0]
	}
	pt.retries = 0
	pt.retryAt = time.Time{}
	p.buffered -= b.size
	for _, a := range b.acks {
		done = append(done, completion{c: a.c, n: a.n, err: err})
	}
	p.recycle(b)
	return done
}

// resultOf returns the broker's answer for pt: nil when stored, else the
// error, whether sending again may succeed and whether leaders should be
// looked up again first. Refusals of the records themselves (see
// refusal.go) are not retriable.
func resultOf(resp *sarama.ProduceResponse, pt *partition) (err error, retriable, refresh bool) {
	if r := resp.GetBlock(pt.topic, pt.id); r != nil {
		switch r.Err {
		case sarama.ErrNoError, sarama.ErrDuplicateSequenceNumber:
			return nil, false, false
		case sarama.ErrNotLeaderForPartition, sarama.ErrLeaderNotAvailable, sarama.ErrUnknownTopicOrPartition,
			sarama.ErrKafkaStorageError, sarama.ErrFencedLeaderEpoch, sarama.ErrUnknownLeaderEpoch,
			sarama.ErrBrokerNotAvailable, sarama.ErrReplicaNotAvailable, sarama.ErrNetworkException:
			return r.Err, true, true
		case sarama.ErrRequestTimedOut, sarama.ErrNotEnoughReplicas, sarama.ErrNotEnoughReplicasAfterAppend,
			sarama.ErrThrottlingQuotaExceeded, sarama.ErrOutOfOrderSequenceNumber,
			sarama.ErrUnknownProducerID, sarama.ErrInvalidProducerEpoch, sarama.ErrProducerFenced:
			return r.Err, true, false
		default:
			return r.Err, false, false
		}
	}
	return errors.New("the broker's answer left the partition out"), true, true
}

// closeConn closes s's connection when it is conn (nil: whichever it is),
// failing the requests in flight on it; the next request connects again.
func (s *sender) closeConn(conn *sarama.Broker) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn != nil && (conn == nil || s.conn == conn) {
		_ = s.conn.Close()
		s.conn = nil
	}
}

func (p *producer) wakeMeta() {
	select {
	case p.metaWake <- struct{}{}:
	default:
	}
}

// runMeta looks up the leaders of partitions that lost theirs and takes a
// new producer id when one is due, retrying with backoff while the brokers
// do not answer.
func (p *producer) runMeta() {
	retries := 0
	for {
		if retries == 0 {
			select {
			case <-p.metaWake:
			case <-p.ctx.Done():
				return
			}
		} else {
			select {
			case <-time.After(p.opts.backoff(retries)):
			case <-p.ctx.Done():
				return
			}
		}
		if p.ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		needPID := p.resetPID && p.inflight == 0
		var topics []string
		for topic, parts := range p.topics {
			for _, pt := range parts {
				if pt.leader < 0 {
					topics = append(topics, topic)
					break
				}
			}
		}
		p.mu.Unlock()
		var err error
		if needPID {
			err = p.renewPID()
		}
		if err == nil && len(topics) > 0 {
			err = p.route(topics)
		}
		if err != nil {
			retries++
			if retries == 1 {
				p.log.Warn("kafka producer metadata unavailable; retrying", "err", err)
			}
			continue
		}
		retries = 0
	}
}

// renewPID takes a new producer id and numbers every batch not yet sent
// afresh. Nothing is in flight.
func (p *producer) renewPID() error {
	resp, err := initProducerID(p.ctx, p.client)
	if err != nil {
		return fmt.Errorf("get a new idempotent producer id: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pid, p.epoch, p.resetPID = resp.ProducerID, resp.ProducerEpoch, false
	for _, parts := range p.topics {
		for _, pt := range parts {
			pt.nextSeq = 0
			for _, b := range pt.ready {
				b.hasSeq = false
			}
		}
	}
	for _, s := range p.senders {
		s.signal()
	}
	return nil
}

// route refreshes the metadata of topics and gives their leaderless
// partitions the current leader.
func (p *producer) route(topics []string) error {
	if err := p.client.RefreshMetadata(topics...); err != nil {
		return fmt.Errorf("refresh metadata of kafka topics %v: %w", topics, err)
	}
	var errs []error
	for _, topic := range topics {
		p.mu.Lock()
		parts := p.topics[topic]
		var ids []int32
		for _, pt := range parts {
			if pt.leader < 0 {
				ids = append(ids, pt.id)
			}
		}
		p.mu.Unlock()
		for _, id := range ids {
			b, err := p.client.Leader(topic, id)
			if err != nil {
				errs = append(errs, fmt.Errorf("leader of kafka topic %q partition %d: %w", topic, id, err))
				continue
			}
			p.mu.Lock()
			parts[id].leader = b.ID()
			p.ensureSender(b)
			s := p.senders[b.ID()]
			p.mu.Unlock()
			if s != nil {
				s.signal()
			}
		}
	}
	return errors.Join(errs...)
}

// close sends what is buffered, bounded by ctx, then stops the senders and
// closes their connections.
func (p *producer) close(ctx context.Context) error {
	p.mu.Lock()
	if !p.flushing {
		p.flushing = true
		if p.buffered == 0 {
			close(p.drained)
		}
	}
	for _, s := range p.senders {
		s.signal()
	}
	p.mu.Unlock()
	var err error
	select {
	case <-p.drained:
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.mu.Lock()
	p.stopped = true
	senders := make([]*sender, 0, len(p.senders))
	for _, s := range p.senders {
		senders = append(senders, s)
	}
	p.mu.Unlock()
	p.cancel()
	for _, s := range senders {
		s.closeConn(nil)
	}
	p.wg.Wait()
	for _, s := range senders {
		s.closeConn(nil)
	}
	return err
}
