package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/adapters/webhook"
	"github.com/tributary/tributary/adapters/webhook/webhooktest"
	"github.com/tributary/tributary/core"
)

// BenchmarkHandler1KB measures the whole ingress path over loopback HTTP:
// concurrent clients post 1 KB JSON deliveries signed with HMAC-SHA256; the
// handler verifies, validates and commits each to the inbox (fsync before
// the answer) while a reader drains and acknowledges them, as the runtime
// would. It reports requests per second and latency percentiles.
func BenchmarkHandler1KB(b *testing.B) {
	for _, clients := range []int{16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { benchHandler(b, clients, nil) })
	}
}

// BenchmarkHandlerDirect1KB measures the handler and inbox without the
// network: 128 goroutines call the mounted handler with in-memory requests,
// so the figure is the ceiling of verification, validation and group
// commit, with no HTTP client or server on the same cores.
func BenchmarkHandlerDirect1KB(b *testing.B) {
	benchHandler(b, 0, nil)
}

// BenchmarkHandlerDirect1KBPruned is BenchmarkHandlerDirect1KB with the
// source told the payload paths a rule like bench/webhook.sh's reads of
// its body (type, data.id, len(data.lines)): the handler builds only
// those.
func BenchmarkHandlerDirect1KBPruned(b *testing.B) {
	benchHandler(b, 0, []core.PayloadPath{
		{Fields: []string{"type"}},
		{Fields: []string{"data", "id"}},
		{Fields: []string{"data", "lines"}, LenOnly: true},
	})
}

// BenchmarkHandlerSteady5k sends 1 KB signed deliveries over loopback HTTP
// at a steady 5000 requests/s (open loop: latency counts from each
// request's scheduled time, so a stall is not hidden by a slower sender)
// and reports p50/p99 latency. b.N is the number of requests.
func BenchmarkHandlerSteady5k(b *testing.B) {
	benchHandler(b, -5000, nil)
}

// benchHandler runs the benchmarks above; paths, when not nil, are the
// payload paths the source is told (SetPayloadPaths).
func benchHandler(b *testing.B, clients int, paths []core.PayloadPath) {
	secret := []byte("bench-secret")
	verifier := webhook.VerifierFunc(func(r *http.Request, body []byte) error {
		sig, err := hex.DecodeString(r.Header.Get("X-Signature"))
		if err != nil {
			return webhook.ErrUnverified
		}
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		if !hmac.Equal(m.Sum(nil), sig) {
			return webhook.ErrUnverified
		}
		return nil
	})
	router := webhooktest.NewRouter()
	srv := httptest.NewServer(router)
	defer srv.Close()
	src, err := webhook.NewSource(webhook.Config{
		Path: "/hooks/bench", Verifier: verifier, MaxPending: 1 << 20, MaxPendingBytes: 1 << 30,
		DeliveryID: func(r *webhook.Request) string { return r.HTTP.Header.Get("X-Delivery") },
	})
	if err != nil {
		b.Fatal(err)
	}
	if paths != nil {
		src.SetPayloadPaths(paths, false)
	}
	ctx := context.Background()
	if err := src.Open(ctx, core.Env{Name: "bench", StateDir: b.TempDir(), HTTP: router}, core.Position{}); err != nil {
		b.Fatal(err)
	}
	defer src.Close(ctx)

	readCtx, stopRead := context.WithCancel(ctx)
	var readWG sync.WaitGroup
	readWG.Add(1)
	go func() {
		defer readWG.Done()
		for {
			chs, err := src.Read(readCtx)
			if err != nil {
				return
			}
			_ = src.Ack(readCtx, chs[len(chs)-1].Position)
		}
	}()

	body := make([]byte, 0, 1024)
	body = append(body, `{"type":"order.created","data":{"id":"o-1","lines":[`...)
	for len(body) < 1000 {
		body = append(body, `{"sku":"ABC-123","qty":1,"price":"9.99"},`...)
	}
	body = append(body[:len(body)-1], `]}}`...)
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	sig := hex.EncodeToString(m.Sum(nil))

	tr := &http.Transport{MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2, MaxConnsPerHost: clients * 2}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	var (
		seq     atomic.Int64
		failed  atomic.Int64
		latMu   sync.Mutex
		latency []time.Duration
	)
	direct := clients == 0
	if direct {
		clients = 128
	}
	if clients < 0 {
		rate := -clients
		tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost, tr.MaxIdleConns = 256, 256, 256
		lat, failures := steady(b, client, srv.URL+"/hooks/bench", body, sig, rate)
		stopRead()
		readWG.Wait()
		if failures > 0 {
			b.Fatalf("%d of %d requests failed", failures, b.N)
		}
		slices.Sort(lat)
		b.ReportMetric(float64(rate), "target-req/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		return
	}
	b.SetBytes(int64(len(body)))
	b.SetParallelism(max(1, clients/2)) // RunParallel starts GOMAXPROCS*p goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/bench", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Signature", sig)
			req.Header.Set("X-Delivery", strconv.FormatInt(seq.Add(1), 10))
			t0 := time.Now()
			if direct {
				req.RemoteAddr = "127.0.0.1:1"
				rec := httptest.NewRecorder()
				router.ServeHTTP(rec, req)
				local = append(local, time.Since(t0))
				if rec.Code != http.StatusOK {
					failed.Add(1)
				}
				continue
			}
			resp, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			local = append(local, time.Since(t0))
			if resp.StatusCode != http.StatusOK {
				failed.Add(1)
			}
		}
		latMu.Lock()
		latency = append(latency, local...)
		latMu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	stopRead()
	readWG.Wait()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	st := src.Status()
	if c := st["inbox_commits"].(int64); c > 0 {
		b.ReportMetric(float64(st["inbox_stored"].(int64))/float64(c), "deliveries/commit")
	}
	if len(latency) > 0 {
		slices.Sort(latency)
		b.ReportMetric(float64(latency[len(latency)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(latency[len(latency)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// steady sends b.N requests at rate per second from a pool of workers and
// returns each request's latency from its scheduled start.
func steady(b *testing.B, client *http.Client, url string, body []byte, sig string, rate int) ([]time.Duration, int64) {
	type job struct {
		n     int
		sched time.Time
	}
	jobs := make(chan job, b.N)
	lat := make([]time.Duration, b.N)
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if d := time.Until(j.sched); d > 0 {
					time.Sleep(d)
				}
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Signature", sig)
				req.Header.Set("X-Delivery", "steady-"+strconv.Itoa(j.n))
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					lat[j.n] = time.Since(j.sched)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[j.n] = time.Since(j.sched)
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	b.ResetTimer()
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := range b.N {
		jobs <- job{n: i, sched: start.Add(time.Duration(i) * interval)}
	}
	close(jobs)
	wg.Wait()
	b.StopTimer()
	return lat, failed.Load()
}
