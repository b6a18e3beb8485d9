// Command webhookload drives a webhook connector with 1 KB JSON deliveries
// signed with HMAC-SHA256 and prints requests per second and latency
// percentiles. It runs closed loop (a fixed number of connections, each
// sending as fast as it is answered) or, with -rate, open loop (a steady
// request rate; latency counts from each request's scheduled time, so a
// stall is not hidden by a slower sender).
//
// With -write-body it only writes the signed body and its signature, for
// other load generators (wrk) to send.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:18080/hooks/bench", "webhook URL")
	secret := flag.String("secret", "bench-secret", "HMAC-SHA256 secret")
	conns := flag.Int("c", 64, "connections (closed loop) or the most requests in flight (open loop)")
	dur := flag.Duration("d", 15*time.Second, "how long to send")
	rate := flag.Int("rate", 0, "requests per second, open loop; 0 sends closed loop")
	prefix := flag.String("id-prefix", strconv.FormatInt(time.Now().UnixNano(), 36), "delivery id prefix (ids must be new to the dedup window)")
	writeBody := flag.String("write-body", "", "write the signed body to this file, print its signature header value, and exit")
	flag.Parse()

	body := makeBody()
	mac := hmac.New(sha256.New, []byte(*secret))
	mac.Write(body)
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if *writeBody != "" {
		if err := os.WriteFile(*writeBody, body, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "webhookload: write body:", err)
			os.Exit(1)
		}
		fmt.Println(sig)
		return
	}
	if err := run(*url, body, sig, *prefix, *conns, *rate, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "webhookload:", err)
		os.Exit(1)
	}
}

// makeBody returns a 1 KB order.placed delivery.
func makeBody() []byte {
	var lines []string
	for i := 0; len(strings.Join(lines, ",")) < 720; i++ {
		lines = append(lines, fmt.Sprintf(`{"sku":"SKU-%05d","qty":%d,"price":%d.99}`, i, i%5+1, i*3+7))
	}
	b := fmt.Sprintf(`{"event":"order.placed","order":{"id":"o-1001","customer":"c-42","total":129.5,"currency":"EUR","lines":[%s]},"note":"`, strings.Join(lines, ","))
	for len(b) < 1022 {
		b += "x"
	}
	return []byte(b + `"}`)
}

// run sends deliveries to url for dur, closed loop with conns connections
// or, when rate is above 0, open loop at rate requests per second, and
// prints what came back.
func run(url string, body []byte, sig, prefix string, conns, rate int, dur time.Duration) error {
	l := newLoader(url, body, sig, prefix, conns)
	l.warm(conns)
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	start := time.Now()
	if rate <= 0 {
		l.closedLoop(ctx, conns)
	} else if dropped := l.openLoop(ctx, start, conns, rate); dropped > 0 {
		fmt.Printf("not sent (more than %d in flight): %d\n", conns, dropped)
	}
	elapsed := time.Since(start)
	mode := fmt.Sprintf("closed loop, %d connections", conns)
	if rate > 0 {
		mode = fmt.Sprintf("open loop, %d req/s offered", rate)
	}
	l.report(mode, elapsed)
	return nil
}

// loader sends signed deliveries and tallies their answers.
type loader struct {
	client *http.Client
	url    string
	body   []byte
	sig    string
	prefix string
	seq    atomic.Int64

	mu      sync.Mutex
	lats    []time.Duration // of 2xx answers
	codes   map[int]int
	errs    int
	errText string // the last error's
}

// newLoader returns a loader with at most conns connections to url.
func newLoader(url string, body []byte, sig, prefix string, conns int) *loader {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
	}
	return &loader{
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		url:    url, body: body, sig: sig, prefix: prefix,
		codes: map[int]int{},
	}
}

// send posts one delivery with a new id and tallies its answer; its
// latency counts from scheduled.
func (l *loader) send(scheduled time.Time) {
	id := l.prefix + "-" + strconv.FormatInt(l.seq.Add(1), 10)
	req, _ := http.NewRequest(http.MethodPost, l.url, bytes.NewReader(l.body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Signature", l.sig)
	req.Header.Set("X-Delivery-Id", id)
	resp, err := l.client.Do(req)
	lat := time.Since(scheduled)
	code := 0
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		code = resp.StatusCode
	}
	l.mu.Lock()
	if err != nil {
		l.errs++
		l.errText = err.Error()
	} else {
		l.codes[code]++
		if code/100 == 2 {
			l.lats = append(l.lats, lat)
		}
	}
	l.mu.Unlock()
}

// warm opens the connections with one delivery each, then forgets their
// answers.
func (l *loader) warm(conns int) {
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() { l.send(time.Now()) })
	}
	wg.Wait()
	l.mu.Lock()
	l.lats, l.codes, l.errs = l.lats[:0], map[int]int{}, 0
	l.mu.Unlock()
}

// closedLoop sends on conns connections, each as fast as it is answered,
// until ctx is done.
func (l *loader) closedLoop(ctx context.Context, conns int) {
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				l.send(time.Now())
			}
		})
	}
	wg.Wait()
}

// openLoop sends rate deliveries per second from start, with at most conns
// in flight, until ctx is done. It returns how many it did not send because
// conns were in flight: the server was behind.
func (l *loader) openLoop(ctx context.Context, start time.Time, conns, rate int) int {
	var wg sync.WaitGroup
	sem := make(chan struct{}, conns)
	interval := time.Second / time.Duration(rate)
	dropped := 0
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case sem <- struct{}{}:
			wg.Go(func() { defer func() { <-sem }(); l.send(at) })
		default:
			dropped++ // more than conns in flight: the server is behind
		}
	}
	wg.Wait()
	return dropped
}

// report prints the requests per second, the answers other than 2xx, the
// errors and the latency percentiles of a run of mode that took elapsed.
func (l *loader) report(mode string, elapsed time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lats := l.lats
	slices.Sort(lats)
	pct := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[min(len(lats)-1, int(float64(len(lats))*p))]
	}
	fmt.Printf("%s, %s\n", mode, elapsed.Round(time.Millisecond))
	fmt.Printf("2xx: %d  (%.0f req/s)\n", len(lats), float64(len(lats))/elapsed.Seconds())
	for c, n := range l.codes {
		if c/100 != 2 {
			fmt.Printf("status %d: %d\n", c, n)
		}
	}
	if l.errs > 0 {
		fmt.Printf("errors: %d (last: %s)\n", l.errs, l.errText)
	}
	fmt.Printf("latency p50 %v  p90 %v  p99 %v  p99.9 %v  max %v\n",
		pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond),
		pct(0.99).Round(10*time.Microsecond), pct(0.999).Round(10*time.Microsecond),
		pct(1).Round(10*time.Microsecond))
}
