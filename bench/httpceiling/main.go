// Command httpceiling is the ceiling of HTTP ingestion on a machine: a
// net/http server that reads each request's body and answers 200 with a
// small JSON body, doing nothing else. bench/webhook.sh drives it with the
// same load as the sidecar (`bench/webhook.sh ceiling`), so that the
// sidecar's figures can be read against what the machine's network stack
// and Go's HTTP server allow at all.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "listen address")
	flag.Parse()
	srv := &http.Server{
		Addr:              *addr,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status":"accepted"}` + "\n"))
		}),
	}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "httpceiling:", err)
		os.Exit(1)
	}
}
