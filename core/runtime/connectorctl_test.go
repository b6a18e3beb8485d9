package runtime_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

func connectorStatus(t *testing.T, rt *runtime.Runtime, name string) runtime.ConnectorStatus {
	t.Helper()
	for _, c := range rt.Status().Connectors {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no connector %q in status", name)
	return runtime.ConnectorStatus{}
}

// TestPauseResumeConnector: a paused connector's session ends after what
// it read is committed, its source is closed, it reads nothing more and
// shows paused; resumed, it opens from its checkpoint and reads on.
func TestPauseResumeConnector(t *testing.T) {
	st := memstream.New()
	src := &seqSource{total: 30, batch: 5}
	rt, stop := startRuntime(t, st, runtime.Connector{Name: "orders", Source: src, Mapper: mapper("orders", 0)})
	defer stop()
	waitFor(t, "ack 30", func() bool { return src.lastAck() == 30 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rt.PauseConnector(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if s := connectorStatus(t, rt, "orders"); s.State != runtime.StatePaused || s.Checkpoint == "" {
		t.Fatalf("after PauseConnector: state %q checkpoint %q, want paused with a checkpoint", s.State, s.Checkpoint)
	}
	src.mu.Lock()
	closed, opens := src.closed, len(src.opens)
	src.total = 40 // more changes appear while paused
	src.mu.Unlock()
	if closed != 1 {
		t.Fatalf("source closed %d times after the pause, want 1", closed)
	}
	if err := rt.PauseConnector(ctx, "orders"); err != nil {
		t.Fatalf("pausing a paused connector: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(st.Messages("test.created")); n != 30 {
		t.Fatalf("the paused connector published %d events, want 30", n)
	}

	if err := rt.ResumeConnector("orders"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ack 40 after resume", func() bool { return src.lastAck() == 40 })
	src.mu.Lock()
	from := src.opens[opens:]
	src.mu.Unlock()
	if len(from) != 1 || from[0] != (core.Position{Version: 1, Data: []byte("30")}).String() {
		t.Fatalf("resumed from %v, want once from the checkpoint 30", from)
	}
	if n := len(st.Messages("test.created")); n != 40 {
		t.Fatalf("%d events after resume, want 40 (none twice)", n)
	}
	if s := connectorStatus(t, rt, "orders"); s.State != runtime.StateRunning {
		t.Fatalf("after resume: state %q", s.State)
	}
}

func TestPauseConnectorErrors(t *testing.T) {
	st := memstream.New()
	rt, stop := startRuntime(t, st,
		runtime.Connector{Name: "on", Source: &seqSource{total: 1}, Mapper: mapper("on", 0)},
		runtime.Connector{Name: "off", Source: &seqSource{total: 1}, Mapper: mapper("off", 0), Disabled: true},
	)
	defer stop()
	tests := []struct {
		name    string
		do      func() error
		wantNo  bool
		wantMsg string
	}{
		{name: "pause unknown", do: func() error { return rt.PauseConnector(context.Background(), "nope") }, wantNo: true},
		{name: "resume unknown", do: func() error { return rt.ResumeConnector("nope") }, wantNo: true},
		{name: "pause disabled", do: func() error { return rt.PauseConnector(context.Background(), "off") }, wantMsg: `connector "off" is disabled in the configuration`},
		{name: "checkpoint unknown", do: func() error {
			_, err := rt.SetCheckpoint(context.Background(), "nope", core.Position{Version: 1, Data: []byte("1")})
			return err
		}, wantNo: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, runtime.ErrNoConnector) != tt.wantNo {
				t.Errorf("errors.Is(%v, ErrNoConnector) = %v", err, !tt.wantNo)
			}
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("error %q, want %q", err, tt.wantMsg)
			}
		})
	}
}

// TestSetCheckpointOfRunningConnector: setting a running connector's
// checkpoint pauses it (what it read is committed first), stores the new
// position, returns the old one, and resumes it from the new position; a
// paused connector stays paused.
func TestSetCheckpointOfRunningConnector(t *testing.T) {
	st := memstream.New()
	src := &seqSource{total: 10, batch: 5}
	rt, stop := startRuntime(t, st, runtime.Connector{Name: "orders", Source: src, Mapper: mapper("orders", 0)})
	defer stop()
	waitFor(t, "ack 10", func() bool { return src.lastAck() == 10 })
	waitFor(t, "running", func() bool { return connectorStatus(t, rt, "orders").State == runtime.StateRunning })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src.mu.Lock()
	src.total = 30
	src.mu.Unlock()
	ch, err := rt.SetCheckpoint(ctx, "orders", core.Position{Version: 1, Data: []byte("25")})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Old == nil || ch.Old.Connector != "orders" || !ch.Paused {
		t.Fatalf("change %+v: want the old checkpoint and paused", ch)
	}
	old, _ := strconv.Atoi(string(ch.Old.Position.Data))
	if old < 10 {
		t.Fatalf("old checkpoint %d, want at least 10", old)
	}
	waitFor(t, "ack 30", func() bool { return src.lastAck() == 30 })
	src.mu.Lock()
	last := src.opens[len(src.opens)-1]
	src.mu.Unlock()
	if want := (core.Position{Version: 1, Data: []byte("25")}).String(); last != want {
		t.Fatalf("reopened from %s, want %s", last, want)
	}
	if err := rt.PauseConnector(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	ch, err = rt.SetCheckpoint(ctx, "orders", core.Position{Version: 1, Data: []byte("3")})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Paused || string(ch.Old.Position.Data) != "30" {
		t.Fatalf("paused connector's change %+v: want old 30, not paused by it", ch)
	}
	time.Sleep(100 * time.Millisecond)
	if s := connectorStatus(t, rt, "orders"); s.State != runtime.StatePaused || s.Checkpoint != (core.Position{Version: 1, Data: []byte("3")}).String() {
		t.Fatalf("a paused connector's checkpoint set: state %q checkpoint %q", s.State, s.Checkpoint)
	}
}
