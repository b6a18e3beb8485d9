package http_test

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	sink "github.com/tributary/tributary/connectors/http"
	"github.com/tributary/tributary/core"
)

func validValues() map[string]any {
	return map[string]any{
		"url":             "https://wms.example.com/api/orders/{{ event.subject }}",
		"method":          "PUT",
		"headers":         map[string]any{"X-Order": "{{ event.data.order_id }}"},
		"body":            "mapped",
		"signing_secrets": []any{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		"auth":            map[string]any{"bearer": "s3cr3t-token"},
		"timeout":         "5s",
		"rate_limit":      10.0,
		"rate_burst":      2,
		"max_concurrency": 4,
		"retry_statuses":  []any{"409"},
	}
}

// TestConfigure: a valid configuration configures; each broken one fails
// with an error at the key that is wrong, quoting no secret.
func TestConfigure(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(v map[string]any)
		wantPaths []string
	}{
		{name: "valid", edit: func(map[string]any) {}},
		{name: "defaults", edit: func(v map[string]any) {
			for k := range v {
				if k != "url" {
					delete(v, k)
				}
			}
		}},
		{name: "basic auth", edit: func(v map[string]any) {
			v["auth"] = map[string]any{"basic": map[string]any{"username": "u", "password": "p"}}
		}},
		{name: "url missing", edit: func(v map[string]any) { delete(v, "url") }, wantPaths: []string{"url"}},
		{name: "url not http", edit: func(v map[string]any) { v["url"] = "ftp://wms/x" }, wantPaths: []string{"url"}},
		{name: "url scheme from an expression", edit: func(v map[string]any) { v["url"] = "{{ event.data.url }}" }, wantPaths: []string{"url"}},
		{name: "url with credentials", edit: func(v map[string]any) { v["url"] = "https://u:pw-in-url@wms/x" }, wantPaths: []string{"url"}},
		{name: "url unclosed expression", edit: func(v map[string]any) { v["url"] = "https://wms/{{ event.subject" }, wantPaths: []string{"url"}},
		{name: "url empty expression", edit: func(v map[string]any) { v["url"] = "https://wms/{{ }}" }, wantPaths: []string{"url"}},
		{name: "url expression does not compile", edit: func(v map[string]any) { v["url"] = "https://wms/{{ event.nope }}" }, wantPaths: []string{"url"}},
		{name: "header expression does not compile", edit: func(v map[string]any) {
			v["headers"] = map[string]any{"X-Order": "{{ event.data.order_id + }}"}
		}, wantPaths: []string{"headers.X-Order"}},
		{name: "header name invalid", edit: func(v map[string]any) { v["headers"] = map[string]any{"X Order": "1"} }, wantPaths: []string{"headers.X Order"}},
		{name: "authorization header beside auth", edit: func(v map[string]any) {
			v["headers"] = map[string]any{"authorization": "Bearer x"}
		}, wantPaths: []string{"headers.authorization"}},
		{name: "signature header beside signing", edit: func(v map[string]any) {
			v["headers"] = map[string]any{"Webhook-Id": "x"}
		}, wantPaths: []string{"headers.Webhook-Id"}},
		{name: "ce header in binary mode", edit: func(v map[string]any) {
			v["body"] = "binary"
			v["headers"] = map[string]any{"ce-type": "x"}
		}, wantPaths: []string{"headers.ce-type"}},
		{name: "method", edit: func(v map[string]any) { v["method"] = "GET" }, wantPaths: []string{"method"}},
		{name: "body", edit: func(v map[string]any) { v["body"] = "xml" }, wantPaths: []string{"body"}},
		{name: "signing secret not base64", edit: func(v map[string]any) { v["signing_secrets"] = []any{"whsec_not base64!"} }, wantPaths: []string{"signing_secrets[0]"}},
		{name: "signing secret empty", edit: func(v map[string]any) { v["signing_secrets"] = []any{"whsec_MfKQ", ""} }, wantPaths: []string{"signing_secrets[1]"}},
		{name: "bearer and basic", edit: func(v map[string]any) {
			v["auth"] = map[string]any{"bearer": "t", "basic": map[string]any{"username": "u", "password": "p"}}
		}, wantPaths: []string{"auth"}},
		{name: "basic without user", edit: func(v map[string]any) {
			v["auth"] = map[string]any{"basic": map[string]any{"password": "p"}}
		}, wantPaths: []string{"auth.basic.username"}},
		{name: "cert without key", edit: func(v map[string]any) { v["tls"] = map[string]any{"cert_file": "c.pem"} }, wantPaths: []string{"tls"}},
		{name: "timeout", edit: func(v map[string]any) { v["timeout"] = "0s" }, wantPaths: []string{"timeout"}},
		{name: "rate limit negative", edit: func(v map[string]any) { v["rate_limit"] = -1.0 }, wantPaths: []string{"rate_limit"}},
		{name: "rate burst zero", edit: func(v map[string]any) { v["rate_burst"] = 0 }, wantPaths: []string{"rate_burst"}},
		{name: "max concurrency zero", edit: func(v map[string]any) { v["max_concurrency"] = 0 }, wantPaths: []string{"max_concurrency"}},
		{name: "retry status 5xx", edit: func(v map[string]any) { v["retry_statuses"] = []any{"409", "500", "x"} }, wantPaths: []string{"retry_statuses[1]", "retry_statuses[2]"}},
		{name: "unknown key", edit: func(v map[string]any) { v["urls"] = "x" }, wantPaths: []string{"urls"}},
		{name: "every problem at once", edit: func(v map[string]any) {
			v["method"], v["timeout"], v["max_concurrency"] = "GET", "0s", 0
		}, wantPaths: []string{"method", "timeout", "max_concurrency"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := validValues()
			tt.edit(v)
			err := sink.New().Configure(core.NewConfig("wms", v))
			if len(tt.wantPaths) == 0 {
				if err != nil {
					t.Fatalf("Configure() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Configure() = nil, want errors at %v", tt.wantPaths)
			}
			var paths []string
			for _, e := range flatten(err) {
				var fe *core.FieldError
				if !errors.As(e, &fe) {
					t.Errorf("error %v is not a *core.FieldError", e)
					continue
				}
				paths = append(paths, fe.Path)
			}
			for _, p := range tt.wantPaths {
				if !slices.Contains(paths, p) {
					t.Errorf("errors at %v, want one at %s: %v", paths, p, err)
				}
			}
			for _, secret := range []string{"s3cr3t-token", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "pw-in-url", "not base64"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error quotes a secret: %v", err)
				}
			}
		})
	}
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// TestOpenReadsTLSFiles: Open fails, naming the key, when a TLS file
// cannot be read or is not PEM; the key file's path is secret and not
// quoted.
func TestOpenReadsTLSFiles(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	secretKeyPath := filepath.Join(dir, "hidden-key-path.pem")
	tests := []struct {
		name      string
		tls       map[string]any
		wantErr   string
		wantFatal bool
	}{
		{name: "ca file missing", tls: map[string]any{"ca_file": filepath.Join(dir, "none.pem")}, wantErr: "tls.ca_file"},
		{name: "ca file not pem", tls: map[string]any{"ca_file": junk}, wantErr: "no PEM certificate", wantFatal: true},
		{name: "key file missing", tls: map[string]any{"cert_file": junk, "key_file": secretKeyPath}, wantErr: "tls.key_file cannot be read"},
		{name: "not a key pair", tls: map[string]any{"cert_file": junk, "key_file": junk}, wantErr: "not a certificate and its key", wantFatal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sink.New()
			if err := s.Configure(core.NewConfig("wms", map[string]any{"url": "https://wms.example.com/x", "tls": tt.tls})); err != nil {
				t.Fatal(err)
			}
			err := s.Open(context.Background(), core.Env{Name: "wms"})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Open() = %v, want %q", err, tt.wantErr)
			}
			if errors.Is(err, core.ErrFatal) != tt.wantFatal {
				t.Errorf("errors.Is(err, ErrFatal) = %v, want %v", !tt.wantFatal, tt.wantFatal)
			}
			if strings.Contains(err.Error(), "hidden-key-path") {
				t.Errorf("Open() quotes the key file's path: %v", err)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Errorf("Close after a failed Open = %v", err)
			}
		})
	}
}

var refRe = regexp.MustCompile(`\$\{([^}:]+)(?::-?([^}]*))?\}`)

// fileSecret stands in for a secret file's content: a valid signing
// secret, and a token.
var fileSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("secret-from-file"))

// interpolate stands in for the config loader: ${VAR:-default} takes its
// default, ${file:...} a fixed value.
func interpolate(s string) string {
	return refRe.ReplaceAllStringFunc(s, func(m string) string {
		sub := refRe.FindStringSubmatch(m)
		if strings.HasPrefix(sub[1], "file") {
			return fileSecret
		}
		return sub[2]
	})
}

// TestSampleConfigures: every sink of sample.yaml (shown in the README)
// configures.
func TestSampleConfigures(t *testing.T) {
	data, err := os.ReadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Sinks []struct {
			Name   string         `yaml:"name"`
			Type   string         `yaml:"type"`
			Config map[string]any `yaml:"config"`
		} `yaml:"sinks"`
	}
	if err := yaml.Unmarshal([]byte(interpolate(string(data))), &doc); err != nil {
		t.Fatalf("decode sample.yaml: %v", err)
	}
	if len(doc.Sinks) == 0 {
		t.Fatal("sample.yaml has no sinks")
	}
	for _, c := range doc.Sinks {
		t.Run(c.Name, func(t *testing.T) {
			if c.Type != sink.Type {
				t.Fatalf("type = %q, want %q", c.Type, sink.Type)
			}
			if err := sink.New().Configure(core.NewConfig(c.Name, c.Config)); err != nil {
				t.Fatalf("Configure() = %v", err)
			}
		})
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), string(data)) {
		t.Error("README.md does not show sample.yaml as it is")
	}
}

func TestRegistered(t *testing.T) {
	spec, ok := core.DefaultRegistry.Sink(sink.Type)
	if !ok {
		t.Fatal("http is not a registered sink type")
	}
	if _, ok := spec.New().(*sink.Sink); !ok {
		t.Errorf("New() returns %T", spec.New())
	}
	core.NewRegistry().RegisterSink(sink.Spec())
}
