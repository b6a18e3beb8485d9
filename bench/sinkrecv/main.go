// Command sinkrecv is the receiver of bench/sink.sh: an HTTP endpoint that
// reads each request's body and answers 200 at once, counting requests.
// When n requests have arrived it prints the time from the first to the
// n-th and the rate, then exits; after -timeout it prints how many came
// and exits 1.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18090", "listen address")
	n := flag.Int64("n", 100000, "requests to wait for")
	timeout := flag.Duration("timeout", 5*time.Minute, "longest wait for the n requests")
	flag.Parse()
	var got atomic.Int64
	var first atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sinkrecv:", err)
		os.Exit(1)
	}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			first.CompareAndSwap(0, time.Now().UnixNano())
			if got.Add(1) == *n {
				once.Do(func() { close(done) })
			}
		}),
	}
	go func() { _ = srv.Serve(ln) }()
	select {
	case <-done:
		elapsed := time.Since(time.Unix(0, first.Load()))
		fmt.Printf("%d events in %.2fs: %.0f events/s\n", *n, elapsed.Seconds(), float64(*n)/elapsed.Seconds())
	case <-time.After(*timeout):
		fmt.Fprintf(os.Stderr, "sinkrecv: %d of %d requests in %s\n", got.Load(), *n, *timeout)
		os.Exit(1)
	}
}
