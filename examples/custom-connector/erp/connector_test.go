package erp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/examples/custom-connector/erp"
)

func validConfig() map[string]any {
	return map[string]any{"url": "http://erp.internal/export", "entity": "orders", "poll_interval": "1s", "batch_size": 100, "timeout": "5s"}
}

func TestConfigureRejects(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(map[string]any)
		field string
	}{
		{name: "missing url", edit: func(m map[string]any) { delete(m, "url") }, field: "url"},
		{name: "url without scheme", edit: func(m map[string]any) { m["url"] = "erp.internal/export" }, field: "url"},
		{name: "unknown entity", edit: func(m map[string]any) { m["entity"] = "invoices" }, field: "entity"},
		{name: "batch too large", edit: func(m map[string]any) { m["batch_size"] = 20000 }, field: "batch_size"},
		{name: "negative interval", edit: func(m map[string]any) { m["poll_interval"] = "-1s" }, field: "poll_interval"},
		{name: "zero interval", edit: func(m map[string]any) { m["poll_interval"] = "0s" }, field: "poll_interval"},
		{name: "zero timeout", edit: func(m map[string]any) { m["timeout"] = "0s" }, field: "timeout"},
		{name: "zero batch", edit: func(m map[string]any) { m["batch_size"] = 0 }, field: "batch_size"},
		{name: "unknown key", edit: func(m map[string]any) { m["pol_interval"] = "1s" }, field: "pol_interval"},
	}
	if err := erp.New().Configure(core.NewConfig("erp", validConfig())); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validConfig()
			tt.edit(m)
			err := erp.New().Configure(core.NewConfig("erp", m))
			var fe *core.FieldError
			if !errors.As(err, &fe) || fe.Path != tt.field {
				t.Fatalf("Configure = %v, want a field error on %q", err, tt.field)
			}
		})
	}
}

func TestReadMapsOperations(t *testing.T) {
	sim := erp.NewSimulator(func() time.Time { return time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC) })
	srv := httptest.NewServer(sim)
	defer srv.Close()
	sim.Put("orders", "SO-1", map[string]string{"status": "ACCEPTED", "total": "12.50"})
	sim.Put("orders", "SO-1", map[string]string{"status": "SHIPPED", "total": "12.50"})
	sim.Delete("orders", "SO-1")
	sim.Put("customers", "C-1", map[string]string{"name": "Ada"})

	src := erp.New()
	if err := src.Configure(core.NewConfig("erp", map[string]any{"url": srv.URL, "poll_interval": "10ms"})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := src.Open(ctx, core.Env{}, core.Position{}); err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	got, err := src.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		op     core.Op
		status any
		pos    string
	}{{core.OpCreate, "ACCEPTED", "1"}, {core.OpUpdate, "SHIPPED", "2"}, {core.OpDelete, nil, "3"}}
	if len(got) != len(want) {
		t.Fatalf("read %d changes, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		ch := got[i]
		if ch.Op != w.op || ch.After["status"] != w.status || string(ch.Position.Data) != w.pos || ch.Key["id"] != "SO-1" {
			t.Errorf("change %d = %s %v at %s, want %s %v at %s", i, ch.Op, ch.After, ch.Position, w.op, w.status, w.pos)
		}
		if ch.Source.Table != "orders" || ch.Source.CommitTime.IsZero() {
			t.Errorf("change %d source = %+v", i, ch.Source)
		}
	}
}

func TestUnauthorizedIsFatal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer srv.Close()
	src := erp.New()
	if err := src.Configure(core.NewConfig("erp", map[string]any{"url": srv.URL, "token": "wrong"})); err != nil {
		t.Fatal(err)
	}
	err := src.Open(context.Background(), core.Env{}, core.Position{})
	if !errors.Is(err, core.ErrFatal) {
		t.Fatalf("Open = %v, want a fatal error", err)
	}
	_ = src.Close(context.Background())
}

func TestOpenRejectsForeignPosition(t *testing.T) {
	src := erp.New()
	if err := src.Configure(core.NewConfig("erp", validConfig())); err != nil {
		t.Fatal(err)
	}
	err := src.Open(context.Background(), core.Env{}, core.Position{Version: 9, Data: []byte("x")})
	if !errors.Is(err, core.ErrFatal) {
		t.Fatalf("Open = %v, want a fatal error", err)
	}
}
