package kafka_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/tributary/tributary/core"
)

// unsecuredJWT returns an unsigned token for subject, valid for an hour,
// as the test broker's unsecured OAUTHBEARER validator takes it.
func unsecuredJWT(subject string) string {
	enc := base64.RawURLEncoding.EncodeToString
	now := time.Now().Unix()
	return enc([]byte(`{"alg":"none"}`)) + "." +
		enc(fmt.Appendf(nil, `{"sub":%q,"iat":%d,"exp":%d}`, subject, now, now+3600)) + "."
}

// TestOAuthBearerOverTLS publishes and consumes through the real broker's
// SASL_SSL listener with OAUTHBEARER, the token given as it is and read
// from a file; a token the broker refuses fails Open with the key to fix.
func TestOAuthBearerOverTLS(t *testing.T) {
	addr, _, _, ca := saslBroker(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(unsecuredJWT("tributary")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		sasl map[string]any
	}{
		{"token", map[string]any{"mechanism": "OAUTHBEARER", "token": unsecuredJWT("tributary")}},
		{"token_file", map[string]any{"mechanism": "OAUTHBEARER", "token_file": file}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := openSecured(t, map[string]any{
				"brokers": []any{addr}, "topic_partitions": 1,
				"tls":  map[string]any{"enabled": true, "ca_file": ca},
				"sasl": tc.sasl,
			})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			topic := "oauth-" + watermill.NewShortUUID()
			msgs := benchEvents(20, 200)
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
	t.Run("refused token", func(t *testing.T) {
		// Expired an hour ago: the broker refuses it.
		enc := base64.RawURLEncoding.EncodeToString
		past := time.Now().Add(-2 * time.Hour).Unix()
		expired := enc([]byte(`{"alg":"none"}`)) + "." + enc(fmt.Appendf(nil, `{"sub":"tributary","iat":%d,"exp":%d}`, past, past+3600)) + "."
		_, err := openSecured(t, map[string]any{
			"brokers": []any{addr}, "topic_partitions": 1,
			"tls":  map[string]any{"enabled": true, "ca_file": ca},
			"sasl": map[string]any{"mechanism": "OAUTHBEARER", "token": expired},
		})
		if err == nil {
			t.Fatal("Open accepted a token the broker refuses")
		}
		if got := err.Error(); !strings.Contains(got, addr) || strings.Contains(got, expired) {
			t.Errorf("error %q: want the broker named and no token shown", got)
		}
	})
}
