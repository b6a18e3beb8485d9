package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sink "github.com/tributary/tributary/connectors/http"
	"github.com/tributary/tributary/connectors/webhook"
	"github.com/tributary/tributary/core"
)

// The Standard Webhooks reference vector: TestWebhookSign in the reference
// implementation (github.com/standard-webhooks/standard-webhooks,
// libraries/go/webhook_test.go), which every reference library signs
// alike.
const (
	swSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	swTS     = 1614265330
	swBody   = `{"test": 2432232314}`
	swSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// A second secret, for rotation.
const otherSecret = "whsec_bmV4dC1zZWNyZXQtYWZ0ZXItcm90YXRpb24="

// vectorEvent is the reference vector's message as an event: its id, and
// its payload as the data, sent as the body in binary mode.
func vectorEvent() *core.Event {
	ev := event(swID, "k", nil)
	ev.Data = json.RawMessage(swBody)
	return ev
}

// TestSignatureReferenceVector: the sink signs the reference vector's
// message with the reference vector's signature, and with several secrets
// sends one signature per secret, the vector's first.
func TestSignatureReferenceVector(t *testing.T) {
	tests := []struct {
		name    string
		secrets []any
		want    string
	}{
		{name: "one secret", secrets: []any{swSecret}, want: swSig},
		{name: "secret without the whsec_ prefix", secrets: []any{strings.TrimPrefix(swSecret, "whsec_")}, want: swSig},
		{name: "rotation: one signature per secret", secrets: []any{swSecret, otherSecret}, want: swSig + " v1,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			s := openWith(t, sink.NewWithClock(func() time.Time { return time.Unix(swTS, 0) }), map[string]any{
				"url": rc.URL, "body": "binary", "signing_secrets": tt.secrets,
			})
			if r := writeWithin(t, s, context.Background(), deliveries(vectorEvent()))[0]; r.Status != core.StatusDelivered {
				t.Fatalf("result = %+v", r)
			}
			got := rc.requests()[0]
			if string(got.Body) != swBody {
				t.Fatalf("body = %q, want the vector's %q", got.Body, swBody)
			}
			if id, ts := got.Header.Get("webhook-id"), got.Header.Get("webhook-timestamp"); id != swID || ts != "1614265330" {
				t.Errorf("webhook-id = %q, webhook-timestamp = %q, want %q and 1614265330", id, ts, swID)
			}
			sig := got.Header.Get("webhook-signature")
			if !strings.HasPrefix(sig, tt.want) || len(strings.Fields(sig)) != len(tt.secrets) {
				t.Errorf("webhook-signature = %q, want %q then one signature per secret", sig, tt.want)
			}
		})
	}
}

// TestSignaturesVerify: a receiver checking Standard Webhooks signatures
// (the webhook source's standard_webhooks verifier) accepts every request
// of every body mode, with either secret of a rotation, and refuses it
// under a secret the sink does not hold or when the body was changed.
func TestSignaturesVerify(t *testing.T) {
	verifier := func(t *testing.T, secret string) func(*http.Request, []byte) error {
		v, err := webhook.NewVerifier(webhook.VerifyConfig{Preset: webhook.PresetStandardWebhooks, Secrets: []string{secret}, Tolerance: 5 * time.Minute}, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		return v.Verify
	}
	for _, body := range []string{"cloudevent", "binary", "mapped"} {
		t.Run(body, func(t *testing.T) {
			rc := newReceiver(t, nil)
			s := open(t, map[string]any{"url": rc.URL, "body": body, "signing_secrets": []any{swSecret, otherSecret}})
			ds := deliveries(event("e-1", "A-1", map[string]any{"order_id": "A-1", "total": 12.5}))
			ds[0].Data = map[string]any{"order_no": "A-1"}
			if r := writeWithin(t, s, context.Background(), ds)[0]; r.Status != core.StatusDelivered {
				t.Fatalf("result = %+v", r)
			}
			got := rc.requests()[0]
			req := httptest.NewRequest(got.Method, got.URI, bytes.NewReader(got.Body))
			req.Header = got.Header
			for _, secret := range []string{swSecret, otherSecret} {
				if err := verifier(t, secret)(req, got.Body); err != nil {
					t.Errorf("verify with a listed secret: %v", err)
				}
			}
			if err := verifier(t, "whsec_dW5rbm93bi1zZWNyZXQ=")(req, got.Body); err == nil {
				t.Error("verify with a secret the sink does not hold passed")
			}
			if err := verifier(t, swSecret)(req, append(got.Body, ' ')); err == nil {
				t.Error("verify of a changed body passed")
			}
			if id := got.Header.Get("webhook-id"); id != "e-1" {
				t.Errorf("webhook-id = %q, want the event id", id)
			}
		})
	}
}

// TestNoSignatureWithoutSecrets: without signing_secrets no webhook-*
// header is sent.
func TestNoSignatureWithoutSecrets(t *testing.T) {
	rc := newReceiver(t, nil)
	s := open(t, map[string]any{"url": rc.URL})
	writeWithin(t, s, context.Background(), deliveries(event("e-1", "A-1", nil)))
	h := rc.requests()[0].Header
	for name := range h {
		if strings.HasPrefix(strings.ToLower(name), "webhook-") && !strings.EqualFold(name, "webhook-id") {
			t.Errorf("header %s sent without signing_secrets", name)
		}
	}
	// The event id travels signed or not, for the receiver to drop
	// duplicates.
	if id := h.Get("webhook-id"); id != "e-1" {
		t.Errorf("webhook-id = %q, want the event id e-1", id)
	}
}
