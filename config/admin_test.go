package config_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tributary/tributary/config"
)

// admin.auth: tokens decode with their roles and the default open paths;
// an admin address that is not loopback needs tokens; a short or shared
// token is refused; no problem shows a token.
func TestAdminAuth(t *testing.T) {
	t.Setenv("TEST_ADMIN_TOKEN", "env-token-0123456789abcdef")
	withAuth := edit(t, validYAML, "  address: 127.0.0.1:9464\n", `  address: 0.0.0.0:9464
  auth:
    tokens:
      - {name: ops, role: operator, token: "${TEST_ADMIN_TOKEN}"}
      - {name: dashboard, token: dashboard-token-0123456789}
`)
	cfg, err := parse(t, withAuth)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []config.AdminToken{
		{Name: "ops", Role: config.RoleOperator, Token: "env-token-0123456789abcdef"},
		{Name: "dashboard", Role: config.RoleRead, Token: "dashboard-token-0123456789"},
	}
	if !slices.Equal(cfg.Admin.Tokens, want) {
		t.Errorf("tokens = %+v, want %+v", cfg.Admin.Tokens, want)
	}
	if !slices.Equal(cfg.Admin.OpenPaths, []string{"/healthz", "/readyz", "/metrics"}) {
		t.Errorf("open paths = %v, want the health, readiness and metrics paths", cfg.Admin.OpenPaths)
	}

	tests := []struct {
		name, old, new string
		line           int
		field, msg     string
	}{
		{name: "not loopback without tokens", old: "  address: 127.0.0.1:9464\n", new: "  address: 0.0.0.0:9464\n",
			line: 5, field: "admin.address", msg: "set admin.auth.tokens"},
		{name: "every address without tokens", old: "  address: 127.0.0.1:9464\n", new: "  address: :9464\n",
			line: 5, field: "admin.address", msg: "is not a loopback address"},
		{name: "short token", old: "  address: 127.0.0.1:9464\n", new: "  address: 127.0.0.1:9464\n  auth: {tokens: [{name: a, token: short-secret}]}\n",
			line: 6, field: "admin.auth.tokens[0].token", msg: "at least 16"},
		{name: "shared token", old: "  address: 127.0.0.1:9464\n", new: "  address: 127.0.0.1:9464\n  auth:\n    tokens:\n      - {name: a, token: same-token-0123456789}\n      - {name: b, token: same-token-0123456789}\n",
			line: 0, field: "admin.auth.tokens[1].token", msg: "same token as admin.auth.tokens[0]"},
		{name: "unknown role", old: "  address: 127.0.0.1:9464\n", new: "  address: 127.0.0.1:9464\n  auth: {tokens: [{name: a, role: admin, token: role-token-0123456789}]}\n",
			line: 0, field: "admin.auth.tokens[0].role", msg: "operator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, edit(t, validYAML, tt.old, tt.new))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			var found bool
			for _, p := range problems(t, err) {
				if p.Field == tt.field && strings.Contains(p.Message, tt.msg) && (tt.line == 0 || p.Line == tt.line) {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem at %s (line %d) saying %q: %v", tt.field, tt.line, tt.msg, err)
			}
			if strings.Contains(err.Error(), "0123456789") || strings.Contains(err.Error(), "short-secret") {
				t.Errorf("the error shows a token: %v", err)
			}
		})
	}
}
