// Package filesink registers the "files" sink: a file drop for the batch
// systems that read one. Events are written as JSON Lines or CSV into a
// file under a hidden temporary name, which is completed (fsynced and
// renamed into place) by size, count or age, so that a reader never sees
// half a file; a Write reports its events delivered only once the file
// holding them is in place. See README.md.
package filesink

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
)

// Type is the sink type ID. The files source has the same name: sources
// and sinks are registered apart.
const Type = "files"

func init() {
	core.RegisterSink(Spec())
}

// Spec returns the sink's registration, for registries built by tests.
func Spec() core.SinkSpec {
	return core.SinkSpec{
		Type:    Type,
		Summary: "Writes events to files in a directory, as JSON Lines or CSV, optionally gzipped, each completed by size, count or age and renamed into place whole.",
		Config:  Config{},
		New:     func() core.Sink { return New() },
	}
}

// Sink is the files sink. Configure it once, then Open, Write
// (concurrently) and Close it, as core.Sink says. Every Write appends to
// the current file, so concurrent Writes share files.
type Sink struct {
	name  string
	cfg   Config
	mode  os.FileMode
	names *namer
	// text are the columns' expressions (csv); object maps them (jsonl).
	text   []*rules.EventProgram
	object *rules.EventData
	header []byte
	envs   sync.Pool
	now    func() time.Time

	mu     sync.Mutex
	opened bool
	seq    int64
	cur    *file
	// last is the file started last: the next one is completed only
	// after it, so that files appear in the order of their names.
	last *file
}

// New returns an unconfigured sink.
func New() *Sink { return &Sink{now: time.Now} }

// Configure decodes and validates the configuration and compiles the
// columns' expressions. It does no I/O.
func (s *Sink) Configure(c core.Config) error {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	mode, _ := strconv.ParseUint(cfg.Mode, 8, 32) // checked by Validate
	var errs []error
	switch cfg.Format {
	case FormatCSV:
		var names []string
		for i, col := range cfg.Columns {
			p, err := rules.CompileEvent(fmt.Sprintf("columns[%d].value", i), col.Value)
			if err != nil {
				errs = append(errs, err)
			}
			s.text = append(s.text, p)
			names = append(names, col.Name)
		}
		s.header = csvLine(names)
	case FormatJSONL:
		if len(cfg.Columns) > 0 {
			m := map[string]any{}
			for _, col := range cfg.Columns {
				m[col.Name] = col.Value
			}
			d, err := rules.CompileEventData("columns", m)
			if err != nil {
				errs = append(errs, err)
			}
			s.object = d
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	s.name, s.cfg, s.mode = c.Name, cfg, os.FileMode(mode)
	s.names = newNamer(cfg.pattern(), cfg.TimeFormat, c.Name)
	s.envs.New = func() any { return rules.NewEventEnv(nil, "") }
	return nil
}

// Open creates the directory when missing, removes the temporary files
// an earlier run of the sink left (their events were never reported
// delivered, so they come again) and numbers the next file after the
// last one in the directory.
func (s *Sink) Open(ctx context.Context, _ core.Env) error {
	if err := s.Close(ctx); err != nil {
		return err
	}
	dir := s.cfg.Dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return core.Fatal(fmt.Errorf("files sink %q: create dir %s: %w", s.name, dir, err))
	}
	left, err := filepath.Glob(filepath.Join(dir, tmpPrefix(s.name)+"*.tmp"))
	if err != nil {
		return fmt.Errorf("files sink %q: %w", s.name, err)
	}
	for _, p := range left {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("files sink %q: remove the unfinished file %s: %w", s.name, p, err)
		}
	}
	seq, err := s.names.lastSeq(dir)
	if err != nil {
		return fmt.Errorf("files sink %q: read dir %s: %w", s.name, dir, err)
	}
	s.mu.Lock()
	s.opened, s.seq, s.cur, s.last = true, seq, nil, nil
	s.mu.Unlock()
	return nil
}

// Write appends the lines of ds to the current file and waits until the
// file holding them is completed: renamed into place, when it reaches
// max_bytes or max_events, max_age after its first event, or once no
// event was added to it for linger. A delivery
// whose line cannot be made (an expression that fails) is refused. Once a
// delivery of a key is not delivered, the later ones of that key are not
// (StatusRetry, no error). Write is safe for concurrent use; when ctx is
// done it returns at once, the deliveries whose file is not in place yet
// retried (they may also appear in that file: a duplicate, same id).
func (s *Sink) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	out := make([]core.Result, len(ds))
	if ctx.Err() != nil {
		for i := range out {
			out[i] = core.Result{Status: core.StatusRetry}
		}
		return out
	}
	lines := s.lines(ds, out)
	files := make([]*file, len(ds))
	var full []*file
	var failed error
	s.mu.Lock()
	if !s.opened {
		failed = fmt.Errorf("files sink %q is not open", s.name)
	}
	for i, line := range lines {
		if line == nil || failed != nil {
			continue
		}
		f, err := s.current()
		if err != nil {
			failed = fmt.Errorf("files sink %q: %w", s.name, err)
			continue
		}
		if err := f.write(line); err != nil {
			s.cur = nil
			f.abandon(fmt.Errorf("files sink %q: write %s: %w", s.name, f.tmp, err))
			failed = f.err
			continue
		}
		f.events++
		files[i] = f
		if f.idle != nil {
			f.idle.Reset(s.cfg.Linger)
		}
		if f.bytes >= s.cfg.MaxBytes || (s.cfg.MaxEvents > 0 && f.events >= s.cfg.MaxEvents) {
			s.cur = nil
			full = append(full, f)
		}
	}
	s.mu.Unlock()
	for _, f := range full {
		s.complete(f)
	}
	return s.results(ctx, ds, lines, files, failed, out)
}

// lines makes the line of each delivery; a delivery whose line cannot be
// made is refused and its key held (nil lines).
func (s *Sink) lines(ds []core.Delivery, out []core.Result) [][]byte {
	env := s.envs.Get().(*rules.EventEnv)
	defer func() {
		env.Reset(nil, "")
		s.envs.Put(env)
	}()
	lines := make([][]byte, len(ds))
	held := map[string]bool{}
	for i, d := range ds {
		if held[d.Event.PartitionKey] {
			out[i] = core.Result{Status: core.StatusRetry}
			continue
		}
		env.Reset(d.Event, s.name)
		line, err := s.line(env, d)
		if err != nil {
			out[i] = core.Result{Status: core.StatusFailed, Err: fmt.Errorf("files sink %q: %w", s.name, err)}
			held[d.Event.PartitionKey] = true
			continue
		}
		lines[i] = line
	}
	return lines
}

// line returns the line of d, its newline included.
func (s *Sink) line(env *rules.EventEnv, d core.Delivery) ([]byte, error) {
	if s.cfg.Format == FormatCSV {
		fields := make([]string, len(s.text))
		for i, p := range s.text {
			v, err := csvField(p, env)
			if err != nil {
				return nil, err
			}
			fields[i] = v
		}
		return csvLine(fields), nil
	}
	var b []byte
	var err error
	switch {
	case s.object != nil:
		var v any
		if v, err = s.object.EvalEnv(env); err == nil {
			b, err = json.Marshal(v)
		}
	case d.Data != nil:
		b, err = json.Marshal(d.Data)
	default:
		b, err = d.Event.MarshalStructured()
	}
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// csvField renders a column's value as a CSV field: as the rules engine
// renders text (numbers with every digit, times in RFC 3339, null as an
// empty field), and lists and objects as JSON.
func csvField(p *rules.EventProgram, env *rules.EventEnv) (string, error) {
	v, err := p.EvalEnv(env)
	if err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case nil:
		return "", nil
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p.Path(), err)
		}
		return string(b), nil
	}
	// Times, booleans and computed numbers, rendered as the rules
	// engine renders text.
	return p.Text(env)
}

// csvLine returns fields as one CSV line (RFC 4180 quoting).
func csvLine(fields []string) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(fields) // a bytes.Buffer does not fail
	w.Flush()
	return buf.Bytes()
}

// current returns the file being written, starting one when there is
// none. s.mu is held.
func (s *Sink) current() (*file, error) {
	if s.cur != nil {
		return s.cur, nil
	}
	now := s.now()
	s.seq++
	f, err := create(s.cfg.Dir, s.name, s.names.name(now, s.seq), s.mode, s.cfg.Gzip)
	if err != nil {
		return nil, err
	}
	if s.header != nil {
		if err := f.write(s.header); err != nil {
			f.abandon(err)
			return nil, err
		}
	}
	prev := s.last
	s.cur, s.last = f, f
	due := func() {
		s.mu.Lock()
		due := s.cur == f
		if due {
			s.cur = nil
		}
		s.mu.Unlock()
		if due {
			s.complete(f)
		}
	}
	f.timer = time.AfterFunc(s.cfg.MaxAge, due)
	if s.cfg.Linger > 0 {
		f.idle = time.AfterFunc(s.cfg.Linger, due)
	}
	f.prev = prev
	return f, nil
}

// complete completes f once the file before it is completed, so that the
// files appear in the order of their sequence numbers.
func (s *Sink) complete(f *file) {
	if f.prev != nil {
		<-f.prev.done
		f.prev = nil
	}
	_ = f.complete() // f.err tells the Writes waiting
}

// results waits for the files of the deliveries and gives their results.
func (s *Sink) results(ctx context.Context, ds []core.Delivery, lines [][]byte, files []*file, failed error, out []core.Result) []core.Result {
	held := map[string]bool{}
	for i, d := range ds {
		key := d.Event.PartitionKey
		switch {
		case lines[i] == nil:
			// refused, or retried behind a refusal, by lines
			held[key] = true
			continue
		case held[key]:
			out[i] = core.Result{Status: core.StatusRetry}
			continue
		}
		var err error
		if f := files[i]; f == nil {
			err = failed
		} else {
			select {
			case <-f.done:
				err = f.err
			case <-ctx.Done():
				err = fmt.Errorf("files sink %q: the file %s was not completed yet: %w", s.name, f.final, ctx.Err())
			}
		}
		if err != nil {
			out[i] = core.Result{Status: core.StatusRetry, Err: err}
			held[key] = true
			continue
		}
		out[i] = core.Result{Status: core.StatusDelivered}
	}
	return out
}

// Close completes the file being written, so that the Writes waiting for
// it return, within ctx. It is safe to call twice and after a failed
// Open.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	f := s.cur
	s.opened, s.cur = false, nil
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.complete(f)
	}()
	select {
	case <-done:
		if f.err != nil {
			return fmt.Errorf("files sink %q: close: %w", s.name, f.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("files sink %q: close: completing %s: %w", s.name, f.final, ctx.Err())
	}
}

var _ core.Sink = (*Sink)(nil)
