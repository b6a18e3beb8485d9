package sql_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	connector "github.com/tributary/tributary/connectors/sql"
	"github.com/tributary/tributary/core"
)

// TestOpenErrorsHideTheDSN: whatever a driver makes of a connection
// string it cannot parse or a server it cannot reach, the connector's
// error quotes neither the string nor its password.
func TestOpenErrorsHideTheDSN(t *testing.T) {
	const secret = "s3cr3t-VALUE-42"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	tests := []struct {
		name   string
		driver string
		dsn    string
	}{
		{name: "postgres unreachable", driver: "postgres", dsn: "postgres://erp:" + secret + "@" + dead + "/erp?sslmode=disable"},
		{name: "postgres key=value malformed", driver: "postgres", dsn: "host=127.0.0.1 user=erp password=" + secret + " port=x"},
		{name: "mysql unreachable", driver: "mysql", dsn: "erp:" + secret + "@tcp(" + dead + ")/erp"},
		{name: "mysql malformed", driver: "mysql", dsn: "erp:" + secret + "@tcp(" + dead + ")/erp?timeout=soon"},
		{name: "sqlserver malformed", driver: "sqlserver", dsn: "sqlserver://erp:" + secret + "@127.0.0.1:port?database=erp"},
		{name: "sqlserver unreachable", driver: "sqlserver", dsn: "sqlserver://erp:" + secret + "@" + dead + "?database=erp"},
		{name: "oracle malformed", driver: "oracle", dsn: "oracle://erp:" + secret + "@127.0.0.1:port/ERP"},
		{name: "oracle escaped password", driver: "oracle", dsn: "oracle://erp:" + secret + "%21@127.0.0.1:port/ERP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := connector.New()
			v := validValues()
			v["driver"], v["dsn"] = tt.driver, tt.dsn
			if err := s.Configure(core.NewConfig("orders", v)); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			env := core.Env{Name: "orders", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StateDir: t.TempDir()}
			err := s.Open(ctx, env, core.Position{})
			_ = s.Close(context.Background())
			if err == nil {
				t.Fatal("Open() = nil, want an error")
			}
			if msg := err.Error(); strings.Contains(msg, secret) || strings.Contains(msg, tt.dsn) {
				t.Fatalf("Open() = %s, which quotes the DSN or its password", msg)
			}
		})
	}
}
