package rest_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

// BenchmarkThousandConnectors runs 1,000 rest_poll connectors on
// "@every 10s" (with 10s of jitter) against one local server for 30
// seconds, reading and acknowledging what they emit, and reports the CPU
// share of the process and its resident memory.
func BenchmarkThousandConnectors(b *testing.B) {
	runtime.TuneGC() // as tributary run does
	const n = 1000
	window := 30 * time.Second
	var reqs atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"items":[{"id":1,"updated_at":"2024-05-01T10:00:00Z","name":"a"},{"id":2,"updated_at":%q,"name":"b"}]}`, time.Now().UTC().Format(time.RFC3339Nano))
	}))
	defer srv.Close()
	for range b.N {
		ctx, cancel := context.WithCancel(context.Background())
		var srcs []core.Source
		var read atomic.Int64
		done := make(chan struct{}, n)
		for i := range n {
			s := newSource(b, map[string]any{
				"url": srv.URL + "/items/" + strconv.Itoa(i), "records_path": "items", "key": []any{"id"},
				"cursor":   map[string]any{"field": "updated_at", "type": "timestamp"},
				"schedule": "@every 10s", "jitter": "10s",
			})
			if err := s.Open(ctx, core.Env{Name: fmt.Sprint("c", i)}, core.Position{}); err != nil {
				b.Fatal(err)
			}
			srcs = append(srcs, s)
			go func() {
				defer func() { done <- struct{}{} }()
				for {
					batch, err := s.Read(ctx)
					if err != nil {
						return
					}
					read.Add(int64(len(batch)))
					_ = s.Ack(ctx, batch[len(batch)-1].Position)
				}
			}()
		}
		var ru0 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		start := time.Now()
		time.Sleep(window)
		var ru1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		wall := time.Since(start)
		rss := statusKB("VmRSS")
		cancel()
		for range n {
			<-done
		}
		for _, s := range srcs {
			s.Close(context.Background())
		}
		cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
		b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "cpu-%-of-one-core")
		b.ReportMetric(float64(rss)/1024, "RSS-MB")
		b.ReportMetric(float64(reqs.Load())/wall.Seconds(), "req/s")
		b.ReportMetric(float64(read.Load()), "changes")
	}
}

func statusKB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}
