package plugin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/plugin"
)

// TestMain doubles the test binary as a plugin: started by the sidecar
// (with the plugin cookie set), it serves testSource instead of running
// tests.
func TestMain(m *testing.M) {
	if os.Getenv(plugin.EnvCookie) != "" {
		if os.Getenv(plugin.EnvRole) == plugin.RoleSink && os.Getenv("TRIBUTARY_TEST_FORCE_SOURCE") == "" {
			plugin.ServeSink(&testSink{})
			return
		}
		profilePlugin()
		plugin.Serve(&testSource{})
		return
	}
	os.Exit(m.Run())
}

// profilePlugin writes a CPU profile of the plugin process to the file
// named by TRIBUTARY_TEST_PLUGIN_CPUPROFILE, covering its first
// TRIBUTARY_TEST_PLUGIN_CPUPROFILE_SECONDS (default 5) seconds: the
// process ends by os.Exit, so the profile stops on a timer.
func profilePlugin() {
	path := os.Getenv("TRIBUTARY_TEST_PLUGIN_CPUPROFILE")
	if path == "" {
		return
	}
	secs, err := strconv.Atoi(os.Getenv("TRIBUTARY_TEST_PLUGIN_CPUPROFILE_SECONDS"))
	if err != nil || secs <= 0 {
		secs = 5
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
	if err != nil {
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return
	}
	time.AfterFunc(time.Duration(secs)*time.Second, func() {
		pprof.StopCPUProfile()
		f.Close()
	})
}

// testSource is the plugin the tests run: it reads a journal file (one
// record per line, appended by Produce), or generates rows, and can be told
// to crash, hang or fail once.
type testSource struct {
	cfg struct {
		Journal string `yaml:"journal"`
		// Generate emits that many rows, then blocks.
		Generate int `yaml:"generate"`
		Batch    int `yaml:"batch"`
		// CrashAfter exits the process after that many changes were read,
		// once: the first process to do so creates Marker.
		CrashAfter int `yaml:"crash_after"`
		// HangAfter freezes the process (SIGSTOP) likewise.
		HangAfter int    `yaml:"hang_after"`
		Marker    string `yaml:"marker"`
		// Log writes one line to stderr on Open.
		Log string `yaml:"log"`
	}
	mu    sync.Mutex
	path  string // the journal; a relative one lives in the state directory
	f     *os.File
	r     *bufio.Reader
	line  int
	read  int
	acked int
}

func (s *testSource) Configure(c core.Config) error {
	if err := c.Decode(&s.cfg); err != nil {
		return err
	}
	if s.cfg.Journal == "" && s.cfg.Generate == 0 {
		return errors.Join(
			core.FieldErrorf("journal", "is required unless generate is set"),
			core.FieldErrorf("generate", "is required unless journal is set"))
	}
	if s.cfg.Batch == 0 {
		s.cfg.Batch = 256
	}
	return nil
}

func (s *testSource) Open(_ context.Context, env core.Env, from core.Position) error {
	if s.cfg.Log != "" {
		env.Logger.Warn(s.cfg.Log, "state_dir_set", env.StateDir != "")
		fmt.Fprintln(os.Stderr, "plain line:", s.cfg.Log)
	}
	if !from.IsZero() {
		n, err := strconv.Atoi(string(from.Data))
		if err != nil {
			return core.Fatal(fmt.Errorf("position %s: %w", from, err))
		}
		s.line = n
	}
	if s.cfg.Journal == "" {
		return nil
	}
	s.path = s.cfg.Journal
	if !filepath.IsAbs(s.path) {
		s.path = filepath.Join(env.StateDir, s.path)
	}
	f, err := os.OpenFile(s.path, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	s.f, s.r = f, bufio.NewReader(f)
	for i := 0; i < s.line; {
		if _, err := s.r.ReadString('\n'); err != nil {
			break
		}
		i++
	}
	return nil
}

func (s *testSource) Read(ctx context.Context) ([]core.Change, error) {
	if s.cfg.Journal == "" {
		return s.generate(ctx)
	}
	var out []core.Change
	var partial string
	for len(out) == 0 {
		for len(out) < s.cfg.Batch {
			l, err := s.r.ReadString('\n')
			if err != nil {
				partial += l
				break
			}
			l = partial + l
			partial = ""
			s.line++
			var rec map[string]any
			_ = json.Unmarshal([]byte(l), &rec)
			out = append(out, core.Change{
				Op: core.OpCreate, Key: map[string]any{"line": s.line}, After: rec,
				Source:   core.SourceInfo{System: "journal", CommitTime: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)},
				Position: core.Position{Version: 1, Data: []byte(strconv.Itoa(s.line))},
				Raw:      []byte(l),
			})
		}
		if partial != "" {
			// A record being written: read it whole next time.
			s.f.Seek(-int64(len(partial)), 1)
			s.r.Reset(s.f)
		}
		if len(out) == 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	s.afterRead(len(out))
	return out, nil
}

func (s *testSource) afterRead(n int) {
	s.read += n
	trigger := func(after int) bool {
		if after == 0 || s.read < after {
			return false
		}
		f, err := os.OpenFile(s.cfg.Marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return false
		}
		f.Close()
		return true
	}
	if trigger(s.cfg.CrashAfter) {
		os.Exit(3)
	}
	if trigger(s.cfg.HangAfter) {
		_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	}
}

func (s *testSource) generate(ctx context.Context) ([]core.Change, error) {
	if s.line >= s.cfg.Generate {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return benchRows(&s.line, s.cfg.Generate, s.cfg.Batch), nil
}

// benchRows returns the rows after *next, up to batch of them and at most
// total, advancing *next.
func benchRows(next *int, total, batch int) []core.Change {
	end := min(*next+batch, total)
	out := make([]core.Change, 0, end-*next)
	for i := *next; i < end; i++ {
		out = append(out, core.Change{
			Op: core.OpCreate,
			After: map[string]any{
				"id": int64(i), "customer_id": int64(i % 977), "status": "accepted", "currency": "EUR",
				"total": json.Number("129.90"), "items": int64(3), "channel": "web", "country": "DE",
				"created_at": "2023-11-14T22:13:20Z", "note": "leave at the door",
			},
			Source:   core.SourceInfo{System: "bench", Table: "orders"},
			Position: core.Position{Version: 1, Data: []byte(strconv.Itoa(i + 1))},
		})
	}
	*next = end
	return out
}

func (s *testSource) Ack(_ context.Context, p core.Position) error {
	n, err := strconv.Atoi(string(p.Data))
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.acked = n
	s.mu.Unlock()
	return nil
}

func (s *testSource) Close(context.Context) error {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	return nil
}

// Produce appends n records to the journal.
func (s *testSource) Produce(_ context.Context, n int) error {
	return appendJournal(s.path, n)
}

// journalMu serialises appends within one process; appends from separate
// processes are whole lines written with O_APPEND.
var journalMu sync.Mutex

func appendJournal(path string, n int) error {
	journalMu.Lock()
	defer journalMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var buf []byte
	for i := range n {
		buf = fmt.Appendf(buf, `{"n":%d,"at":%d}`+"\n", i, time.Now().UnixNano())
	}
	_, err = f.Write(buf)
	return err
}

var _ plugin.Producer = (*testSource)(nil)
