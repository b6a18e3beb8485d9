package cli_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// TestTailOverSASLAndTLS: `events tail` reads through the broker's SASL_SSL
// listener with the stream's tls and sasl settings, and a wrong password
// fails it with the fix named and the password not shown.
func TestTailOverSASLAndTLS(t *testing.T) {
	plain := servicetest.Kafka(t)
	addr, user, password, ca := os.Getenv("TRIBUTARY_KAFKA_SASL_BROKERS"), os.Getenv("TRIBUTARY_KAFKA_SASL_USER"),
		os.Getenv("TRIBUTARY_KAFKA_SASL_PASSWORD"), os.Getenv("TRIBUTARY_KAFKA_CA")
	if addr == "" {
		if servicetest.Required() {
			t.Fatal("the SASL_SSL listener is required but TRIBUTARY_KAFKA_SASL_BROKERS is unset: run `scripts/services up kafka` and export `scripts/services env`")
		}
		t.Skip("no SASL_SSL listener: run `scripts/services up kafka` and export `scripts/services env`")
	}
	topic := fmt.Sprintf("tail-sasl.%d.deadletter", time.Now().UnixNano())

	// Three events, published over the plaintext listener.
	s := kafka.New()
	if err := s.Configure(core.NewConfig("seed", map[string]any{"brokers": []any{plain[0]}, "topic_partitions": 1})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Open(ctx, core.Env{Name: "seed"}); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	for i := range 3 {
		e := core.Event{ID: fmt.Sprintf("ev-%d", i), Source: "/test", SpecVersion: core.SpecVersion, Type: "com.example.thing.happened.v1", Data: []byte(`{}`)}
		if err := s.Publisher().Publish(topic, e.ToMessage()); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}

	cfgFile := filepath.Join(t.TempDir(), "tributary.yaml")
	cfg := fmt.Sprintf(`stream:
  type: kafka
  topics: {mode: per_type, prefix: "tail-sasl."}
  dead_letter_topic: %q
  config:
    brokers: [%q]
    tls: {enabled: true, ca_file: %q}
    sasl: {mechanism: SCRAM-SHA-512, username: %q, password: "${TAIL_KAFKA_PASSWORD}"}
`, topic, addr, ca, user)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tail := func(pw string) (string, error) {
		cmd := exec.Command(tributaryBinary(t), "events", "tail", "-c", cfgFile, "--dead-letter", "--no-follow")
		cmd.Env = append(os.Environ(), "TAIL_KAFKA_PASSWORD="+pw)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := tail(password)
	if err != nil {
		t.Fatalf("events tail: %v\n%s", err, out)
	}
	for i := range 3 {
		if !strings.Contains(out, fmt.Sprintf(`"id":"ev-%d"`, i)) {
			t.Fatalf("events tail printed no ev-%d:\n%s", i, out)
		}
	}

	wrong := "wrong-" + password
	out, err = tail(wrong)
	if err == nil {
		t.Fatalf("events tail with a wrong password succeeded:\n%s", out)
	}
	if !strings.Contains(out, addr) || !strings.Contains(out, "sasl.password") || strings.Contains(out, wrong) {
		t.Fatalf("events tail error %q: want the broker and sasl.password named, the password not shown", out)
	}
}
