package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/tributary/tributary/cmd/tributary/cli"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// Fault listener of the broker that scripts/services runs: the broker
// listens on faultListener and advertises the address in
// envKafkaFaultBrokers, where this test runs a proxy it can cut.
const (
	envKafkaFaultBrokers = servicetest.EnvKafkaFault
	faultListener        = "127.0.0.1:9094"
)

// kafkaFaultBrokers returns the advertised address of the broker's fault
// listener.
func kafkaFaultBrokers(t *testing.T) string { return servicetest.KafkaFault(t) }

// cutProxy forwards TCP connections from its address to a target until cut:
// cutting closes its listener and every open connection, so clients see the
// broker go away (refused connections, broken sockets); restoring listens
// again on the same address.
type cutProxy struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newCutProxy(addr, target string) (*cutProxy, error) {
	p := &cutProxy{addr: addr, target: target, conns: map[net.Conn]struct{}{}}
	if err := p.restore(); err != nil {
		return nil, err
	}
	return p, nil
}

// restore listens again; a no-op when already listening.
func (p *cutProxy) restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return nil
	}
	var (
		ln  net.Listener
		err error
	)
	// The port was ours a moment ago; a socket of the cut may linger briefly.
	for range 50 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("listen on fault proxy address %s (is another fault test running?): %w", p.addr, err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

// cut closes the listener and every forwarded connection.
func (p *cutProxy) cut() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
}

// close cuts and waits for every forwarding goroutine.
func (p *cutProxy) close() {
	p.cut()
	p.wg.Wait()
}

// track registers c unless the proxy was cut since ln accepted it.
func (p *cutProxy) track(ln net.Listener, cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != ln {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *cutProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *cutProxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		client, err := ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(ln, client, server) {
			client.Close()
			server.Close()
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			done := make(chan struct{}, 2)
			pipe := func(dst, src net.Conn) {
				io.Copy(dst, src)
				done <- struct{}{}
			}
			go pipe(server, client)
			go pipe(client, server)
			<-done
			p.untrack(client, server)
			<-done
		}()
	}
}

// faultSidecarConfig is a sidecar with one webhook connector writing to the
// Kafka fault listener; %d is max_pending.
const faultSidecarConfig = `
version: 1
state_dir: %s
log: {level: error}
admin: {address: %s}
http: {address: %s}
shutdown: {timeout: 20s}
stream:
  type: kafka
  config:
    brokers: [%q]
    checkpoint_topic: %s
    dial_timeout: 1s
  topics: {prefix: %q}
  dead_letter_topic: %s
connectors:
  - name: fault
    type: webhook
    retry: {initial: 50ms, max: 500ms}
    # Few changes in flight: the outage's backlog waits in the inbox, past
    # the 2 MiB it queues in memory.
    max_in_flight: 100
    config:
      path: /hooks/fault
      dedup: {header: X-Delivery-Id}
      max_pending: %d
    emit:
      - {name: received, type: com.example.fault.received, data: payload}
`

// faultDelivery is one request of the load and its answer.
type faultDelivery struct {
	id           string
	status       int
	duringOutage bool // sent and answered while the proxy was cut
	retryAfter   string
}

// TestKafkaBrokerOutage runs steady webhook load through an in-process
// sidecar into the real Kafka broker, reached through a proxy that is cut
// for a few seconds mid-run (the broker, as the sidecar sees it, goes away
// and comes back). Afterwards the topic, read directly from the broker, must
// hold the event id of every delivery answered 2xx (at least once: a publish
// whose acknowledgement the cut lost is sent again) and no event of a
// delivery answered 429 or 503. With the default inbox the outage is
// absorbed (deliveries keep getting 2xx and their events arrive after the
// restore); with a small max_pending the inbox fills and refuses.
func TestKafkaBrokerOutage(t *testing.T) {
	brokers := servicetest.Kafka(t)
	faultAddr := kafkaFaultBrokers(t)
	if c, err := net.DialTimeout("tcp", faultListener, 5*time.Second); err != nil {
		t.Fatalf("the kafka broker has no fault listener on %s: %v (`scripts/services up kafka` restarts a broker started without it)", faultListener, err)
	} else {
		c.Close()
	}
	proxy, err := newCutProxy(faultAddr, faultListener)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.close()

	for _, tc := range []struct {
		name        string
		maxPending  int
		wantRefused bool
	}{
		{name: "inbox absorbs the outage", maxPending: 100000},
		{name: "full inbox refuses", maxPending: 20, wantRefused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runKafkaOutage(t, brokers, faultAddr, proxy, tc.maxPending, tc.wantRefused)
		})
	}
}

func runKafkaOutage(t *testing.T, brokers []string, faultAddr string, proxy *cutProxy, maxPending int, wantRefused bool) {
	const (
		rate        = 250 // deliveries per second
		loadFor     = 7 * time.Second
		outageFrom  = 2 * time.Second
		outageUntil = 5 * time.Second
		workers     = 8
	)
	if err := proxy.restore(); err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprint("fault-", time.Now().UnixNano())
	prefix := run + "."
	topic := prefix + "com.example.fault.received"
	dir := t.TempDir()
	admin, httpAddr := faultFreeAddr(t), faultFreeAddr(t)
	cfgFile := filepath.Join(dir, "tributary.yaml")
	cfg := fmt.Sprintf(faultSidecarConfig, filepath.Join(dir, "state"), admin, httpAddr,
		faultAddr, run+".checkpoints", prefix, run+".dead-letter", maxPending)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := cli.Build(core.DefaultRegistry, cfgFile, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sidecar shutdown: %v", err)
		}
	}
	defer stop()
	faultWaitReady(t, admin)

	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers},
	}
	defer client.CloseIdleConnections()
	hook := "http://" + httpAddr + "/hooks/fault"

	pad := strings.Repeat("p", 4000)
	// Steady load: a ticker hands out delivery numbers; workers post them.
	var outage atomic.Int32 // incremented at the cut and at the restore
	jobs := make(chan int)
	results := make(chan faultDelivery, 2*rate*int(loadFor/time.Second))
	var wg sync.WaitGroup
	var postErr atomic.Value
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range jobs {
				d := faultDelivery{id: fmt.Sprintf("%s-%d", run, n)}
				before := outage.Load()
				// 4 KB bodies: the outage's backlog passes the 2 MiB the
				// inbox queues in memory, and the rest is read back from
				// its segments.
				req, _ := http.NewRequest(http.MethodPost, hook, strings.NewReader(fmt.Sprintf(`{"n":%d,"pad":%q}`, n, pad)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Delivery-Id", d.id)
				resp, err := client.Do(req)
				if err != nil {
					postErr.CompareAndSwap(nil, fmt.Errorf("post delivery %s: %w", d.id, err))
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				d.status = resp.StatusCode
				d.retryAfter = resp.Header.Get("Retry-After")
				d.duringOutage = before == 1 && outage.Load() == 1
				results <- d
			}
		}()
	}
	var pendingAtRestore float64
	start := time.Now()
	tick := time.NewTicker(time.Second / rate)
	for n := 0; ; n++ {
		<-tick.C
		elapsed := time.Since(start)
		if elapsed >= loadFor {
			break
		}
		if outage.Load() == 0 && elapsed >= outageFrom {
			proxy.cut()
			outage.Add(1)
		}
		if outage.Load() == 1 && elapsed >= outageUntil {
			pendingAtRestore = inboxPending(t, sc)
			outage.Add(1)
			if err := proxy.restore(); err != nil {
				t.Error(err)
			}
		}
		jobs <- n
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	close(results)
	if err, _ := postErr.Load().(error); err != nil {
		t.Fatal(err)
	}

	eventID := func(deliveryID string) string {
		return core.EventID("fault", core.Position{Version: 1, Data: []byte(deliveryID)}, "received")
	}
	accepted, refused := map[string]bool{}, map[string]bool{}
	var total, acceptedInOutage, refusedInOutage int
	for d := range results {
		total++
		switch {
		case d.status >= 200 && d.status < 300:
			accepted[eventID(d.id)] = true
			if d.duringOutage {
				acceptedInOutage++
			}
		case d.status == http.StatusTooManyRequests || d.status == http.StatusServiceUnavailable:
			refused[eventID(d.id)] = true
			if d.duringOutage {
				refusedInOutage++
			}
			if d.retryAfter == "" {
				t.Errorf("delivery %s answered %d without Retry-After", d.id, d.status)
			}
		default:
			t.Errorf("delivery %s answered %d", d.id, d.status)
		}
	}
	if wantRefused && len(refused) == 0 {
		t.Errorf("no delivery was refused although max_pending is %d", maxPending)
	}
	if !wantRefused {
		if len(refused) != 0 {
			t.Errorf("%d deliveries refused although the inbox (max_pending %d) should absorb the outage", len(refused), maxPending)
		}
		if acceptedInOutage == 0 {
			t.Errorf("no delivery was accepted while the broker was cut off")
		}
		// The deliveries accepted during the outage waited in the inbox:
		// the stream could not take them.
		if pendingAtRestore == 0 {
			t.Errorf("the inbox was empty when the broker came back: the outage did not stop publishing")
		}
	}

	// Every accepted delivery's event must reach the broker once the proxy
	// is back; then stop the sidecar so nothing more can be written and read
	// each partition to its end.
	readFaultTopic(t, brokers, topic, accepted, false)
	readBack := faultReadBack(t, admin)
	if !wantRefused && readBack == 0 {
		t.Errorf("no delivery was read back from the inbox's segments: the outage's backlog (%v at the restore) stayed in memory", pendingAtRestore)
	}
	stop()
	seen := readFaultTopic(t, brokers, topic, nil, true)

	records, duplicates := 0, 0
	for id, n := range seen {
		records += n
		duplicates += n - 1
		if !accepted[id] {
			if refused[id] {
				t.Errorf("event %s of a refused delivery was emitted", id)
			} else {
				t.Errorf("event %s matches no delivery of this run", id)
			}
		}
	}
	missing := 0
	for id := range accepted {
		if seen[id] == 0 {
			missing++
			if missing <= 10 {
				t.Errorf("event %s of an accepted delivery never arrived", id)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d accepted deliveries have no event", missing, len(accepted))
	}
	t.Logf("%d deliveries: %d accepted (%d during the %v outage, %v pending in the inbox at the restore, %d read back from its segments), %d refused (%d during the outage); %d records, %d distinct ids, %d duplicates",
		total, len(accepted), acceptedInOutage, outageUntil-outageFrom, pendingAtRestore, readBack, len(refused), refusedInOutage, records, len(seen), duplicates)
}

// inboxPending reads the connector's inbox depth from the sidecar's metrics.
func inboxPending(t *testing.T, sc *cli.Sidecar) float64 {
	t.Helper()
	mfs, err := sc.Registry.Gather()
	if err != nil {
		t.Fatalf("gather sidecar metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tributary_webhook_inbox_pending" {
			for _, m := range mf.GetMetric() {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("sidecar metrics lack tributary_webhook_inbox_pending")
	return 0
}

// faultReadBack reads how many deliveries the connector read back from its
// inbox's segments, from the admin API's status.
func faultReadBack(t *testing.T, admin string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/v1/connectors/fault")
	if err != nil {
		t.Fatalf("connector status: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`"inbox_read_back": *([0-9]+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatalf("connector status lacks inbox_read_back: %s", raw)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// faultWaitReady polls the admin API until the sidecar is ready.
func faultWaitReady(t *testing.T, admin string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			var ready map[string]any
			json.NewDecoder(resp.Body).Decode(&ready)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("readyz %d: %v", resp.StatusCode, ready)
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidecar never became ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func faultFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// readFaultTopic reads topic from the oldest offset directly from the broker
// and counts records by ce_id. With want, it reads until every id in want
// was seen; with toEnd, until each partition's high-water mark at the call.
func readFaultTopic(t *testing.T, brokers []string, topic string, want map[string]bool, toEnd bool) map[string]int {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		t.Fatalf("connect to kafka %v: %v", brokers, err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var parts []int32
	for {
		if parts, err = client.Partitions(topic); err == nil && len(parts) > 0 {
			break
		}
		client.RefreshMetadata(topic)
		select {
		case <-ctx.Done():
			t.Fatalf("topic %s never appeared: %v", topic, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	seen := map[string]int{}
	type rec struct {
		id   string
		part int32
		off  int64
	}
	recs := make(chan rec)
	ends := map[int32]int64{}
	var pcs []sarama.PartitionConsumer
	defer func() {
		for _, pc := range pcs {
			pc.Close()
		}
	}()
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("high-water mark of %s/%d: %v", topic, p, err)
		}
		ends[p] = end
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("consume %s/%d: %v", topic, p, err)
		}
		pcs = append(pcs, pc)
		go func() {
			for m := range pc.Messages() {
				r := rec{part: m.Partition, off: m.Offset}
				for _, h := range m.Headers {
					if string(h.Key) == "ce_id" {
						r.id = string(h.Value)
					}
				}
				select {
				case recs <- r:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	next := map[int32]int64{}
	complete := func() bool {
		if toEnd {
			for p, end := range ends {
				if next[p] < end {
					return false
				}
			}
			return true
		}
		for id := range want {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	}
	for !complete() {
		select {
		case r := <-recs:
			if r.id == "" {
				t.Errorf("record %s/%d@%d has no ce_id header", topic, r.part, r.off)
			}
			seen[r.id]++
			next[r.part] = r.off + 1
		case <-ctx.Done():
			n := 0
			for id := range want {
				if seen[id] > 0 {
					n++
				}
			}
			t.Fatalf("reading %s: %d of %d accepted ids seen, offsets %v of %v", topic, n, len(want), next, ends)
		}
	}
	return seen
}
