// Package configtest loads a connector's sample configuration with the real
// config loader, so that every connector's sample.yaml is checked the way a
// user's file is: interpolation, strict field validation, Configure, the
// catalog and the rules.
package configtest

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
)

// Sample loads file (a sidecar configuration, usually a connector's
// sample.yaml holding a `connectors:` list) against a registry holding the
// given source specs and a placeholder for the default embedded stream;
// every ${file:...} secret reads as a placeholder. It
// fails the test with every problem the loader reports, and fails when the
// file declares no connector or a connector without rules.
func Sample(t testing.TB, file string, specs ...core.SourceSpec) *config.Config {
	t.Helper()
	return SampleWithSecrets(t, file, nil, specs...)
}

// SampleWithSecrets is Sample where the ${file:PATH} references named in
// secrets read as the given values (a connection URL that must parse, say).
func SampleWithSecrets(t testing.TB, file string, secrets map[string]string, specs ...core.SourceSpec) *config.Config {
	t.Helper()
	reg := core.NewRegistry()
	for _, s := range specs {
		reg.RegisterSource(s)
	}
	reg.RegisterStream(core.StreamSpec{Type: "embedded", Summary: "placeholder", New: func() core.Stream { return nopStream{} }})
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Samples point secrets at files such as /run/secrets/x; each reads
	// as a placeholder here.
	cfg, err := config.ParseWith(file, data, reg, config.Options{
		OpenSecret: func(path string) (io.ReadCloser, error) {
			v, ok := secrets[path]
			if !ok {
				v = "sample-secret"
			}
			return io.NopCloser(strings.NewReader(v)), nil
		},
	})
	if err != nil {
		t.Fatalf("%s does not load:\n%v", file, err)
	}
	if len(cfg.Connectors) == 0 {
		t.Fatalf("%s declares no connector", file)
	}
	for _, c := range cfg.Connectors {
		if len(c.Emit) == 0 {
			t.Errorf("%s: connector %q has no emit rules", file, c.Name)
		}
	}
	return cfg
}

// nopStream stands in for the embedded stream, whose package a connector's
// tests need not import.
type nopStream struct{}

func (nopStream) Configure(cfg core.Config) error                              { return cfg.Decode(&struct{}{}) }
func (nopStream) Open(context.Context, core.Env) error                         { return nil }
func (nopStream) Publisher() message.Publisher                                 { return nil }
func (nopStream) Checkpoints() core.CheckpointStore                            { return nil }
func (nopStream) Ping(context.Context) error                                   { return nil }
func (nopStream) Close(context.Context) error                                  { return nil }
func (nopStream) Subscriber(core.SubscribeOptions) (message.Subscriber, error) { return nil, nil }
