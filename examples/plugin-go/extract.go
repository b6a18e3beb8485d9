package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/plugin"
)

// The extract's record layout: fixed-width columns, one record per line.
//
//	cols  0-9   order id      "SO-0000001"
//	cols 10-19  status        "ACCEPTED  "
//	cols 20-31  amount, cents "000000012990"
//	cols 32-34  currency      "EUR"
//	cols 35-42  order date    "20240501"
const (
	recordLen = 43
	lineLen   = recordLen + 1
)

// Extract reads the fixed-width extract. Its position is the number of
// records read, so a restart seeks straight past the committed ones.
type Extract struct {
	cfg struct {
		// File is the extract; a relative path is inside the connector's
		// state directory.
		File string `yaml:"file"`
		// PollInterval is the wait when no new record is there. Default 1s.
		PollInterval time.Duration `yaml:"poll_interval"`
		// BatchSize is the most records per read. Default 500.
		BatchSize int `yaml:"batch_size"`
	}
	path string
	f    *os.File
	next int // records read
	mu   sync.Mutex
}

// NewExtract returns an unconfigured source.
func NewExtract() *Extract { return &Extract{} }

// Configure decodes and checks the plugin's config block.
func (e *Extract) Configure(c core.Config) error {
	if err := c.Decode(&e.cfg); err != nil {
		return err
	}
	var errs []error
	if e.cfg.File == "" {
		errs = append(errs, core.FieldErrorf("file", "is required: the path of the fixed-width extract"))
	}
	if e.cfg.PollInterval == 0 {
		e.cfg.PollInterval = time.Second
	}
	if e.cfg.BatchSize == 0 {
		e.cfg.BatchSize = 500
	}
	if e.cfg.BatchSize < 0 {
		errs = append(errs, core.FieldErrorf("batch_size", "must be positive, got %d", e.cfg.BatchSize))
	}
	return errors.Join(errs...)
}

// Open opens the extract and seeks past the records before from.
func (e *Extract) Open(_ context.Context, env core.Env, from core.Position) error {
	if !from.IsZero() {
		n, err := strconv.Atoi(string(from.Data))
		if err != nil || from.Version != 1 {
			return core.Fatal(fmt.Errorf("extract position %s: not a record count of version 1", from))
		}
		e.next = n
	}
	e.path = e.cfg.File
	if !filepath.IsAbs(e.path) {
		e.path = filepath.Join(env.StateDir, e.path)
	}
	f, err := os.OpenFile(e.path, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open extract %s: %w", e.path, err)
	}
	if _, err := f.Seek(int64(e.next)*lineLen, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("seek extract %s to record %d: %w", e.path, e.next, err)
	}
	e.f = f
	env.Logger.Info("extract opened", "file", e.path, "from_record", e.next)
	return nil
}

// Read returns the complete records appended since the last read.
func (e *Extract) Read(ctx context.Context) ([]core.Change, error) {
	buf := make([]byte, e.cfg.BatchSize*lineLen)
	for {
		n, err := io.ReadFull(e.f, buf)
		whole := n / lineLen
		if rest := n - whole*lineLen; rest > 0 {
			// A record still being written: read it whole next time.
			if _, serr := e.f.Seek(-int64(rest), io.SeekCurrent); serr != nil {
				return nil, fmt.Errorf("seek extract %s: %w", e.path, serr)
			}
		}
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("read extract %s: %w", e.path, err)
		}
		if whole > 0 {
			out := make([]core.Change, 0, whole)
			for i := range whole {
				e.next++
				ch, err := parseRecord(buf[i*lineLen:(i+1)*lineLen], e.next)
				if err != nil {
					return nil, core.Fatal(fmt.Errorf("extract %s record %d: %w", e.path, e.next, err))
				}
				out = append(out, ch)
			}
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(e.cfg.PollInterval):
		}
	}
}

func parseRecord(line []byte, n int) (core.Change, error) {
	if line[recordLen] != '\n' {
		return core.Change{}, fmt.Errorf("record is not %d characters long", recordLen)
	}
	s := string(line[:recordLen])
	id := strings.TrimSpace(s[0:10])
	cents, err := strconv.ParseInt(s[20:32], 10, 64)
	if err != nil {
		return core.Change{}, fmt.Errorf("amount %q: %w", s[20:32], err)
	}
	day, err := time.Parse("20060102", s[35:43])
	if err != nil {
		return core.Change{}, fmt.Errorf("order date %q: %w", s[35:43], err)
	}
	return core.Change{
		Op:  core.OpCreate,
		Key: map[string]any{"id": id},
		After: map[string]any{
			"id": id, "status": strings.TrimSpace(s[10:20]), "amount_cents": cents,
			"currency": s[32:35], "order_date": day.Format(time.DateOnly),
		},
		Source:   core.SourceInfo{System: "mainframe", Table: "ORDERS.DAT"},
		Position: core.Position{Version: 1, Data: []byte(strconv.Itoa(n))},
		Raw:      append([]byte(nil), line[:recordLen]...),
	}, nil
}

// Ack has nothing to release: the extract is the mainframe's.
func (e *Extract) Ack(context.Context, core.Position) error { return nil }

// Close closes the extract. It is safe to call twice.
func (e *Extract) Close(context.Context) error {
	if e.f == nil {
		return nil
	}
	err := e.f.Close()
	e.f = nil
	return err
}

// Produce appends n generated records, the test hook `tributary plugin
// test` and the conformance kit use.
func (e *Extract) Produce(_ context.Context, n int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return AppendRecords(e.path, n)
}

// AppendRecords appends n generated records to the extract at path.
func AppendRecords(path string, n int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	first := int(info.Size()/lineLen) + 1
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "SO-%07d%-10s%012d%s%s\n", first+i, "ACCEPTED", 1299+i, "EUR", "20240501")
	}
	_, err = f.WriteString(b.String())
	return err
}

var (
	_ core.Source     = (*Extract)(nil)
	_ plugin.Producer = (*Extract)(nil)
)
