package sql_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// TestProblemsThatNeedAPersonStopTheConnector: rejected credentials and a
// missing table stop the connector (core.ErrFatal, one policy with
// postgres_cdc and rest_poll) with what to check, instead of being retried
// forever; a database that is down is retried.
func TestProblemsThatNeedAPersonStopTheConnector(t *testing.T) {
	pg := servicetest.Postgres(t)
	my := servicetest.MySQL(t)
	tests := []struct {
		name, driver, dsn, table string
		fatal                    bool
		want                     string
	}{
		{name: "postgres wrong password", driver: "postgres", dsn: strings.Replace(pg, "tributary:tributary@", "tributary:wrong@", 1), table: "t", fatal: true, want: "check the user and password in dsn"},
		{name: "mysql wrong password", driver: "mysql", dsn: strings.Replace(my, "tributary:tributary@", "tributary:wrong@", 1), table: "t", fatal: true, want: "check the user and password in dsn"},
		{name: "postgres missing table", driver: "postgres", dsn: pg, table: "no_such_table_x", fatal: true, want: "create it, or fix table"},
		{name: "mysql missing table", driver: "mysql", dsn: my, table: "no_such_table_x", fatal: true, want: "create it, or fix table"},
		{name: "postgres down", driver: "postgres", dsn: "postgres://tributary:tributary@127.0.0.1:1/tributary?sslmode=disable&connect_timeout=2", table: "t", fatal: false, want: "connect to postgres database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSource(t, map[string]any{
				"driver": tt.driver, "dsn": tt.dsn, "table": tt.table, "key": []any{"id"},
				"mode": "snapshot", "schedule": "@every 1h",
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			defer s.Close(context.Background())
			err := s.Open(ctx, testEnv(t), core.Position{})
			if err == nil {
				_, err = s.Read(ctx)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, core.ErrFatal); got != tt.fatal {
				t.Fatalf("fatal = %v, want %v: %v", got, tt.fatal, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Fatalf("error %q shows the password", err)
			}
		})
	}
}
