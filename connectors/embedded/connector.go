// Package embedded is Tributary's default stream: a durable, append-only log
// of messages in one SQLite file in the state directory, so that a laptop or
// a single sidecar needs no broker. Publishes are group committed (many
// publishes, one transaction, one fsync), subscriptions replay from the
// beginning, a time or the end, and consumer groups resume from their
// committed offsets. Source checkpoints live in the same file.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// Type is the stream type ID used in YAML.
const Type = "embedded"

// ErrNotOpen is returned when the stream is used before a successful Open.
var ErrNotOpen = errors.New("embedded stream not open")

func init() {
	core.RegisterStream(core.StreamSpec{
		Type:    Type,
		Summary: "Durable stream in a local SQLite file: the default, needs no broker.",
		Config:  Config{},
		New:     func() core.Stream { return New() },
	})
}

// Stream is the embedded stream. Construct it with New, then Configure,
// Open, use, and Close. Open may be called again after a failed Open and
// after Close: each Open opens the database afresh.
type Stream struct {
	mu     sync.Mutex
	cfg    Config
	hasCfg bool
	st     *store // the open database, or the last one closed
	closed bool   // st is closed and no Open has succeeded since
}

var _ core.Stream = (*Stream)(nil)

// New returns an unconfigured stream. It does no I/O.
func New() *Stream { return &Stream{} }

// Configure decodes and validates cfg. It does no I/O. Errors are
// *core.FieldError values naming the field.
func (s *Stream) Configure(cfg core.Config) error {
	c, err := ParseConfig(cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.hasCfg = c, true
	return nil
}

// Open opens (or creates) the database file and starts the writer. A failed
// Open leaves nothing open, and Open may be called again on the same
// stream, after a failed Open as after Close: it opens the file afresh (a
// path blocked at the first attempt may be free at the next). Publishers,
// subscribers and checkpoint stores taken before a Close stay closed; take
// them again after the new Open.
func (s *Stream) Open(ctx context.Context, env core.Env) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != nil && !s.closed {
		return errors.New("open embedded stream: already open; Close it before opening it again")
	}
	// The last database, if any, is closed (or being closed by the Close
	// that marked it): it stays with the handles taken on it.
	s.st, s.closed = nil, false
	if !s.hasCfg {
		c, err := ParseConfig(core.NewConfig(env.Name, nil))
		if err != nil {
			return err
		}
		s.cfg, s.hasCfg = c, true
	}
	file, err := s.cfg.file(env.StateDir)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(file); err == nil && fi.IsDir() {
		return core.FieldErrorf("path", "%q is a directory; name the database file, such as %s", file, filepath.Join(file, defaultFile))
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o750); err != nil {
		return fmt.Errorf("create directory of stream database %q: %w", file, err)
	}
	logger := env.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	st, err := openStore(ctx, file, s.cfg, logger)
	if err != nil {
		return err
	}
	s.st = st
	return nil
}

func (s *Stream) store() *store {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// Publisher returns a new publisher handle on the stream. Closing the
// handle does not close the stream. Before Open, its methods return
// ErrNotOpen.
func (s *Stream) Publisher() message.Publisher {
	return &Publisher{st: s.store()}
}

// Subscriber returns a new subscriber reading as opts say. The caller
// closes it; Close of the stream closes it too.
func (s *Stream) Subscriber(opts core.SubscribeOptions) (message.Subscriber, error) {
	st := s.store()
	if st == nil {
		return nil, fmt.Errorf("create subscriber: %w", ErrNotOpen)
	}
	return newSubscriber(st, opts)
}

// Checkpoints returns the checkpoint store kept in the stream's database.
func (s *Stream) Checkpoints() core.CheckpointStore {
	return &Checkpoints{st: s.store()}
}

// Ping returns nil when the database answers a query.
func (s *Stream) Ping(ctx context.Context) error {
	st := s.store()
	if st == nil {
		return ErrNotOpen
	}
	if st.isClosed() {
		return ErrClosed
	}
	var one int
	if err := st.rdb.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping stream database %q: %w", st.file, err)
	}
	return nil
}

// Close ends every subscriber, writes the publishes still queued (bounded
// by ctx: what is left when ctx ends fails with ErrClosed), then closes the
// database. It is safe to call twice and after a failed Open. Until the
// next Open, the stream's methods return ErrClosed.
func (s *Stream) Close(ctx context.Context) error {
	s.mu.Lock()
	st := s.st
	s.closed = st != nil
	s.mu.Unlock()
	if st == nil {
		return nil
	}
	st.subsMu.Lock()
	subs := st.subs
	st.subs = nil
	st.subsMu.Unlock()
	for sub := range subs {
		_ = sub.Close()
	}
	return st.shutdown(ctx)
}
