package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tributary/tributary/cmd/tributary/cli"
	connplugin "github.com/tributary/tributary/connectors/plugin"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
)

// TestPluginTestCommand runs `tributary plugin test` against this plugin.
func TestPluginTestCommand(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "tributary.yaml")
	yaml := `version: 1
stream:
  type: memory
connectors:
  - name: mainframe_orders
    type: plugin
    config:
      command: ` + exe + `
      transport: grpc
      heartbeat_timeout: 2s
      config:
        file: ORDERS.DAT
        poll_interval: 10ms
    emit:
      - name: order_accepted
        type: com.acme.order.accepted
        data: {order_id: key.id}
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := core.NewRegistry()
	reg.RegisterSource(connplugin.Spec())
	reg.RegisterStream(memstream.Spec(memstream.New()))

	tests := []struct {
		name    string
		args    []string
		wantErr string
		want    []string
	}{
		{name: "all checks pass", args: []string{"test", "-c", cfg}, want: []string{
			"PASS mainframe_orders/Conformance/ResumeAfterPartialAck", "PASS mainframe_orders/BadConfigRejected",
			"PASS mainframe_orders/CrashRestart", "PASS mainframe_orders (",
		}},
		{name: "unknown connector", args: []string{"test", "-c", cfg, "--connector", "nope"}, wantErr: `no connector named "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			cmd := cli.NewPluginCmd(reg)
			cmd.SetArgs(tt.args)
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SilenceUsage = true
			err := cmd.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("plugin test: %v\n%s", err, out.String())
			}
			t.Logf("plugin test output:\n%s", out.String())
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
