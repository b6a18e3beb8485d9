package kafka_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// saslBroker returns the SASL_SSL listener of the test broker, its test
// user and password, and the CA that signs its certificate, as
// `scripts/services env` prints them.
func saslBroker(t testing.TB) (addr, user, password, ca string) {
	t.Helper()
	servicetest.Kafka(t) // skips, or fails when services are required, without Kafka
	addr, user, password, ca = os.Getenv("TRIBUTARY_KAFKA_SASL_BROKERS"), os.Getenv("TRIBUTARY_KAFKA_SASL_USER"),
		os.Getenv("TRIBUTARY_KAFKA_SASL_PASSWORD"), os.Getenv("TRIBUTARY_KAFKA_CA")
	if addr == "" || user == "" || ca == "" {
		if servicetest.Required() {
			t.Fatal("the SASL_SSL listener is required but TRIBUTARY_KAFKA_SASL_BROKERS is unset: run `scripts/services up kafka` and export `scripts/services env`")
		}
		t.Skip("no SASL_SSL listener: run `scripts/services up kafka` and export `scripts/services env`")
	}
	return addr, user, password, ca
}

// openSecured opens a stream on values, returning Open's error.
func openSecured(t *testing.T, values map[string]any) (*kafka.Stream, error) {
	t.Helper()
	s := kafka.New()
	if err := s.Configure(core.NewConfig("secured", values)); err != nil {
		t.Fatalf("configure: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Open(ctx, core.Env{Name: "secured"}); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s, nil
}

// TestSASLOverTLS publishes and reads back events through the broker's
// SASL_SSL listener with each mechanism.
func TestSASLOverTLS(t *testing.T) {
	addr, user, password, ca := saslBroker(t)
	for _, mechanism := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mechanism, func(t *testing.T) {
			s, err := openSecured(t, map[string]any{
				"brokers": []any{addr}, "topic_partitions": 1,
				"tls":  map[string]any{"enabled": true, "ca_file": ca},
				"sasl": map[string]any{"mechanism": mechanism, "username": user, "password": password},
			})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			topic := "sasl-" + watermill.NewShortUUID()
			msgs := benchEvents(50, 200)
			if err := s.Publisher().Publish(topic, msgs...); err != nil {
				t.Fatalf("publish: %v", err)
			}
			sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			ch, err := sub.Subscribe(context.Background(), topic)
			if err != nil {
				t.Fatalf("subscribe: %v", err)
			}
			for i := range msgs {
				select {
				case m := <-ch:
					m.Ack()
				case <-time.After(30 * time.Second):
					t.Fatalf("read %d of %d events", i, len(msgs))
				}
			}
		})
	}
}

// TestSecurityRefusals: a wrong password and an untrusted certificate
// fail Open at once, with an error that names the brokers and what to
// fix, and holds no secret.
func TestSecurityRefusals(t *testing.T) {
	addr, user, password, ca := saslBroker(t)
	tests := []struct {
		name   string
		tls    map[string]any
		sasl   map[string]any
		secret string
		want   string
	}{
		{
			name:   "wrong password",
			tls:    map[string]any{"enabled": true, "ca_file": ca},
			sasl:   map[string]any{"mechanism": "SCRAM-SHA-512", "username": user, "password": "not-" + password},
			secret: "not-" + password,
			want:   "sasl.password",
		},
		{
			name:   "untrusted certificate",
			tls:    map[string]any{"enabled": true},
			sasl:   map[string]any{"mechanism": "SCRAM-SHA-256", "username": user, "password": password},
			secret: password,
			want:   "tls.ca_file",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := openSecured(t, map[string]any{"brokers": []any{addr}, "tls": tc.tls, "sasl": tc.sasl})
			if err == nil {
				t.Fatal("open succeeded")
			}
			t.Logf("error after %s: %v", time.Since(start).Round(time.Millisecond), err)
			msg := err.Error()
			if !strings.Contains(msg, addr) || !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not name the broker %s and the fix %s", msg, addr, tc.want)
			}
			if strings.Contains(msg, tc.secret) {
				t.Fatalf("error %q shows the password", msg)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("open retried until its deadline: %v", err)
			}
		})
	}
}
