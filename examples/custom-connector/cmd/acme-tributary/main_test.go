package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tributary/tributary/cmd/tributary/cli"
	"github.com/tributary/tributary/core"
)

// TestCustomBuild checks that the custom sidecar knows the compiled-in
// connector and accepts the example's configuration.
func TestCustomBuild(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "lists the custom connector", args: []string{"connectors"}, want: "acme_erp_poll"},
		{name: "validates the sample", args: []string{"validate", "-c", "../../tributary.yaml"}, want: "valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := cli.Run(core.DefaultRegistry, tt.args, &out, &errOut); code != cli.ExitOK {
				t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Fatalf("output lacks %q:\n%s", tt.want, out.String())
			}
		})
	}
}
