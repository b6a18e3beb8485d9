package filesink

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// file is a file being written under its temporary name, and then
// completed: flushed, fsynced, renamed to its final name, its directory
// fsynced.
type file struct {
	tmp, final string
	f          *os.File
	bw         *bufio.Writer
	gz         *gzip.Writer
	w          io.Writer
	bytes      int64
	events     int
	timer      *time.Timer
	// idle completes the file once no event was added for linger.
	idle *time.Timer
	// prev is the file started before, completed first.
	prev *file
	// done is closed once the file is completed (err nil) or abandoned.
	done chan struct{}
	err  error
}

// tmpPrefix starts the temporary names of a sink's files: a dot, so that
// readers that skip hidden files never see them, and the sink's name, so
// that Open removes only its own leftovers.
func tmpPrefix(sink string) string { return ".tributary-" + sink + "-" }

// create starts a file whose final name is final, in dir.
func create(dir, sink, final string, mode os.FileMode, gz bool) (*file, error) {
	tmp := filepath.Join(dir, tmpPrefix(sink)+final+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", tmp, err)
	}
	out := &file{tmp: tmp, final: filepath.Join(dir, final), f: f, bw: bufio.NewWriterSize(f, 256<<10), done: make(chan struct{})}
	out.w = out.bw
	if gz {
		out.gz = gzip.NewWriter(out.bw)
		out.w = out.gz
	}
	return out, nil
}

// write appends p.
func (f *file) write(p []byte) error {
	n, err := f.w.Write(p)
	f.bytes += int64(n)
	return err
}

// complete flushes, fsyncs and renames the file into place and fsyncs
// its directory, so that the file is whole under its final name before
// anyone is told. On failure the temporary file is removed. Either way
// done is closed.
func (f *file) complete() error {
	f.stopTimers()
	err := f.finish()
	if err == nil {
		err = os.Rename(f.tmp, f.final)
	}
	if err == nil {
		err = syncDir(filepath.Dir(f.final))
	}
	if err != nil {
		_ = os.Remove(f.tmp)
		f.err = fmt.Errorf("complete %s: %w", f.final, err)
	}
	close(f.done)
	return f.err
}

// abandon removes the temporary file: its events are not delivered.
func (f *file) abandon(why error) {
	f.stopTimers()
	_ = f.f.Close()
	_ = os.Remove(f.tmp)
	f.err = why
	close(f.done)
}

func (f *file) stopTimers() {
	for _, t := range []*time.Timer{f.timer, f.idle} {
		if t != nil {
			t.Stop()
		}
	}
}

func (f *file) finish() error {
	var errs []error
	if f.gz != nil {
		errs = append(errs, f.gz.Close())
	}
	errs = append(errs, f.bw.Flush(), f.f.Sync(), f.f.Close())
	return errors.Join(errs...)
}

// syncDir fsyncs dir, so that a rename in it survives a power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// namer makes the final names of a sink's files from its pattern.
type namer struct {
	pattern, layout, sink string
	// re matches the names the pattern makes, its group the sequence.
	re *regexp.Regexp
}

func newNamer(pattern, layout, sink string) *namer {
	q := regexp.QuoteMeta(strings.ReplaceAll(pattern, "{sink}", sink))
	q = strings.ReplaceAll(q, regexp.QuoteMeta("{time}"), ".+")
	q = strings.Replace(q, regexp.QuoteMeta("{seq}"), "([0-9]+)", 1)
	q = strings.ReplaceAll(q, regexp.QuoteMeta("{seq}"), "[0-9]+")
	return &namer{pattern: pattern, layout: layout, sink: sink, re: regexp.MustCompile("^" + q + "$")}
}

// name returns the name of the file started at t with sequence seq.
func (n *namer) name(t time.Time, seq int64) string {
	r := strings.NewReplacer("{sink}", n.sink, "{time}", t.UTC().Format(n.layout), "{seq}", fmt.Sprintf("%06d", seq))
	return r.Replace(n.pattern)
}

// lastSeq returns the highest sequence of the files of dir the pattern
// made, 0 when there is none, so that numbering goes on after a restart.
func (n *namer) lastSeq(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var last int64
	for _, e := range entries {
		m := n.re.FindStringSubmatch(e.Name())
		if len(m) < 2 {
			continue
		}
		if s, err := strconv.ParseInt(m[1], 10, 64); err == nil && s > last {
			last = s
		}
	}
	return last, nil
}
