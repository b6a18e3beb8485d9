// Command httpceiling is the ceiling of HTTP ingestion on a machine: a
// net/http server that reads each request's body and answers 200 with a
// small JSON body, doing nothing else. bench/webhook.sh drives it with the
// same load as the sidecar (`bench/webhook.sh ceiling`), so that the
// sidecar's figures can be read against what the machine's network stack
// and Go's HTTP server allow at all.
//
// With -durable DIR it is the ceiling of a durable 2xx instead
// (`bench/webhook.sh durable`): each body is appended to a preallocated
// file in DIR by one writer, which group-commits what is queued (one
// write and one fdatasync, at most one commit per -window), and the
// request is answered once its commit returned. No signature, no
// parsing, no deduplication, no stream: what the disk and the HTTP stack
// allow for a webhook that answers 2xx only once a delivery is durable.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "listen address")
	durable := flag.String("durable", "", "directory of the log that each body is made durable in before the 200 (empty: answer at once)")
	window := flag.Duration("window", time.Millisecond, "least time between the starts of two group commits (with -durable)")
	mode := flag.String("sync", "fdatasync", "how a commit is made durable (with -durable): fdatasync after the write, dsync (O_DSYNC writes) or direct (O_DIRECT|O_DSYNC, each commit padded to 4 KiB blocks)")
	flag.Parse()
	var w *writer
	if *durable != "" {
		var err error
		if w, err = openWriter(*durable, *window, *mode); err != nil {
			fmt.Fprintln(os.Stderr, "httpceiling:", err)
			os.Exit(1)
		}
	}
	srv := &http.Server{
		Addr:              *addr,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(rw, err.Error(), http.StatusBadRequest)
				return
			}
			if w != nil {
				if err := w.append(body); err != nil {
					http.Error(rw, err.Error(), http.StatusServiceUnavailable)
					return
				}
			}
			rw.Header().Set("Content-Type", "application/json")
			_, _ = rw.Write([]byte(`{"status":"accepted"}` + "\n"))
		}),
	}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "httpceiling:", err)
		os.Exit(1)
	}
}

// logSize is the preallocated log's size; the writer wraps around to its
// start, so that no commit changes the file's size or its block map and
// fdatasync writes the data alone.
const logSize = 256 << 20

// block is the alignment of an O_DIRECT write.
const block = 4096

type req struct {
	body []byte
	done chan error
}

type writer struct {
	f      *os.File
	off    int64
	window time.Duration
	mode   string
	reqs   chan req
}

func openWriter(dir string, window time.Duration, mode string) (*writer, error) {
	flags := 0
	switch mode {
	case "fdatasync":
	case "dsync":
		flags = syscall.O_DSYNC
	case "direct":
		flags = syscall.O_DSYNC | syscall.O_DIRECT
	default:
		return nil, fmt.Errorf("-sync %q: use fdatasync, dsync or direct", mode)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "log"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	zero := make([]byte, 1<<20)
	for off := int64(0); off < logSize; off += int64(len(zero)) {
		if _, err := f.WriteAt(zero, off); err != nil {
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if flags != 0 {
		name := f.Name()
		f.Close()
		if f, err = os.OpenFile(name, os.O_RDWR|flags, 0); err != nil {
			return nil, err
		}
	}
	w := &writer{f: f, window: window, mode: mode, reqs: make(chan req, 4096)}
	go w.run()
	return w, nil
}

func (w *writer) append(body []byte) error {
	done := make(chan error, 1)
	w.reqs <- req{body: body, done: done}
	return <-done
}

func (w *writer) run() {
	var batch []req
	buf := aligned(1 << 20)
	var last time.Time
	for {
		batch = append(batch[:0], <-w.reqs)
		if wait := time.Until(last.Add(w.window)); wait > 0 {
			ts := syscall.NsecToTimespec(int64(wait))
			for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
			}
		}
	fill:
		for len(batch) < 1024 {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		last = time.Now()
		size := 0
		for _, r := range batch {
			size += len(r.body)
		}
		if w.mode == "direct" {
			size = (size + block - 1) / block * block
		}
		if size > cap(buf) {
			buf = aligned(size)
		}
		buf = buf[:size]
		n := 0
		for _, r := range batch {
			n += copy(buf[n:], r.body)
		}
		clear(buf[n:])
		if w.off+int64(size) > logSize {
			w.off = 0
		}
		_, err := w.f.WriteAt(buf, w.off)
		w.off += int64(size)
		if err == nil && w.mode == "fdatasync" {
			err = syscall.Fdatasync(int(w.f.Fd()))
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

// aligned returns a buffer of capacity n whose start is on a block
// boundary, as an O_DIRECT write needs.
func aligned(n int) []byte {
	raw := make([]byte, n+block)
	pad := 0
	if a := int(uintptr(unsafe.Pointer(&raw[0])) % block); a != 0 {
		pad = block - a
	}
	return raw[pad : pad : pad+n]
}
