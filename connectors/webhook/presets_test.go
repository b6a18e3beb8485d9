package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/adapters/webhook"
	connector "github.com/tributary/tributary/connectors/webhook"
	"github.com/tributary/tributary/core"
)

const (
	// GitHub's documented example ("Validating webhook deliveries").
	githubSecret = "It's a Secret to Everybody"
	githubBody   = "Hello, World!"
	githubSig    = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

	// Slack's documented example ("Verifying requests from Slack").
	slackSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	slackTS     = "1531420618"
	slackBody   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	slackSig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

	// The Standard Webhooks reference libraries' signing test vector.
	swSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	swID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	swTS     = "1614265330"
	swBody   = `{"test": 2432232314}`
	swSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

	// Stripe's signed payload is "<t>.<body>" under the whsec_ secret; this
	// value was computed independently with openssl.
	stripeSecret = "whsec_test_stripe"
	stripeTS     = "1700000000"
	stripeBody   = `{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}`
	stripeV1     = "53e0ae204ee2eb2821068ea06afc9be5fdd54b697f231ab5847e42a1458d4e76"

	// Shopify: base64 HMAC-SHA256 of the body (computed with openssl).
	shopifySecret = "shpss_secret"
	shopifyBody   = `{"id":1,"topic":"orders/create"}`
	shopifySig    = "7CJMkwk95NxCIZ/lDNFtYTXok569L4I5Jub461+LJGU="
)

func at(ts string, offset time.Duration) func() time.Time {
	return func() time.Time {
		tm, _ := time.Parse(time.RFC3339, "1970-01-01T00:00:00Z")
		var secs int64
		for _, c := range ts {
			secs = secs*10 + int64(c-'0')
		}
		return tm.Add(time.Duration(secs)*time.Second + offset)
	}
}

func TestPresets(t *testing.T) {
	basic := func(u, p string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))
	}
	tests := []struct {
		name    string
		verify  connector.VerifyConfig
		now     func() time.Time
		body    string
		headers map[string]string
		wantErr bool
	}{
		{name: "github published example",
			verify: connector.VerifyConfig{Preset: "github", Secrets: []string{githubSecret}},
			body:   githubBody, headers: map[string]string{"X-Hub-Signature-256": githubSig}},
		{name: "github rotated secret second",
			verify: connector.VerifyConfig{Preset: "github", Secrets: []string{"new secret", githubSecret}},
			body:   githubBody, headers: map[string]string{"X-Hub-Signature-256": githubSig}},
		{name: "github wrong secret",
			verify: connector.VerifyConfig{Preset: "github", Secrets: []string{"It's a secret to everybody"}},
			body:   githubBody, headers: map[string]string{"X-Hub-Signature-256": githubSig}, wantErr: true},
		{name: "github tampered body",
			verify: connector.VerifyConfig{Preset: "github", Secrets: []string{githubSecret}},
			body:   githubBody + " ", headers: map[string]string{"X-Hub-Signature-256": githubSig}, wantErr: true},
		{name: "github missing header",
			verify: connector.VerifyConfig{Preset: "github", Secrets: []string{githubSecret}},
			body:   githubBody, wantErr: true},
		{name: "github truncated signature",
			verify: connector.VerifyConfig{Preset: "github", Secrets: []string{githubSecret}},
			body:   githubBody, headers: map[string]string{"X-Hub-Signature-256": githubSig[:len(githubSig)-2]}, wantErr: true},
		{name: "github odd-length signature",
			verify: connector.VerifyConfig{Preset: "github", Secrets: []string{githubSecret}},
			body:   githubBody, headers: map[string]string{"X-Hub-Signature-256": githubSig[:len(githubSig)-1]}, wantErr: true},
		{name: "github fixes the hmac settings",
			verify: connector.VerifyConfig{Preset: "github", Secrets: []string{githubSecret}, Algorithm: "sha1", Encoding: "base64", Header: "X-Signature", Prefix: "v1="},
			body:   githubBody, headers: map[string]string{"X-Hub-Signature-256": githubSig}},
		{name: "github missing prefix",
			verify: connector.VerifyConfig{Preset: "github", Secrets: []string{githubSecret}},
			body:   githubBody, headers: map[string]string{"X-Hub-Signature-256": strings.TrimPrefix(githubSig, "sha256=")}, wantErr: true},

		{name: "slack published example", now: at(slackTS, 30*time.Second),
			verify: connector.VerifyConfig{Preset: "slack", Secrets: []string{slackSecret}},
			body:   slackBody, headers: map[string]string{"X-Slack-Signature": slackSig, "X-Slack-Request-Timestamp": slackTS}},
		{name: "slack expired timestamp", now: at(slackTS, 6*time.Minute),
			verify: connector.VerifyConfig{Preset: "slack", Secrets: []string{slackSecret}},
			body:   slackBody, headers: map[string]string{"X-Slack-Signature": slackSig, "X-Slack-Request-Timestamp": slackTS}, wantErr: true},
		{name: "slack timestamp from the future", now: at(slackTS, -6*time.Minute),
			verify: connector.VerifyConfig{Preset: "slack", Secrets: []string{slackSecret}},
			body:   slackBody, headers: map[string]string{"X-Slack-Signature": slackSig, "X-Slack-Request-Timestamp": slackTS}, wantErr: true},
		{name: "slack wrong timestamp", now: at(slackTS, 0),
			verify: connector.VerifyConfig{Preset: "slack", Secrets: []string{slackSecret}},
			body:   slackBody, headers: map[string]string{"X-Slack-Signature": slackSig, "X-Slack-Request-Timestamp": "1531420619"}, wantErr: true},
		{name: "slack missing timestamp", now: at(slackTS, 0),
			verify: connector.VerifyConfig{Preset: "slack", Secrets: []string{slackSecret}},
			body:   slackBody, headers: map[string]string{"X-Slack-Signature": slackSig}, wantErr: true},
		{name: "slack wrong secret", now: at(slackTS, 0),
			verify: connector.VerifyConfig{Preset: "slack", Secrets: []string{"other"}},
			body:   slackBody, headers: map[string]string{"X-Slack-Signature": slackSig, "X-Slack-Request-Timestamp": slackTS}, wantErr: true},

		{name: "standard webhooks test vector", now: at(swTS, time.Minute),
			verify: connector.VerifyConfig{Preset: "standard_webhooks", Secrets: []string{swSecret}},
			body:   swBody, headers: map[string]string{"Webhook-Id": swID, "Webhook-Timestamp": swTS, "Webhook-Signature": swSig}},
		{name: "standard webhooks secret without prefix", now: at(swTS, 0),
			verify: connector.VerifyConfig{Preset: "standard_webhooks", Secrets: []string{strings.TrimPrefix(swSecret, "whsec_")}},
			body:   swBody, headers: map[string]string{"Webhook-Id": swID, "Webhook-Timestamp": swTS, "Webhook-Signature": swSig}},
		{name: "standard webhooks several signatures", now: at(swTS, 0),
			verify: connector.VerifyConfig{Preset: "standard_webhooks", Secrets: []string{swSecret}},
			body:   swBody, headers: map[string]string{"Webhook-Id": swID, "Webhook-Timestamp": swTS,
				"Webhook-Signature": "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + swSig}},
		{name: "standard webhooks wrong id", now: at(swTS, 0),
			verify: connector.VerifyConfig{Preset: "standard_webhooks", Secrets: []string{swSecret}},
			body:   swBody, headers: map[string]string{"Webhook-Id": "msg_other", "Webhook-Timestamp": swTS, "Webhook-Signature": swSig}, wantErr: true},
		{name: "standard webhooks expired", now: at(swTS, 5*time.Minute+time.Second),
			verify: connector.VerifyConfig{Preset: "standard_webhooks", Secrets: []string{swSecret}},
			body:   swBody, headers: map[string]string{"Webhook-Id": swID, "Webhook-Timestamp": swTS, "Webhook-Signature": swSig}, wantErr: true},
		{name: "standard webhooks missing id", now: at(swTS, 0),
			verify: connector.VerifyConfig{Preset: "standard_webhooks", Secrets: []string{swSecret}},
			body:   swBody, headers: map[string]string{"Webhook-Timestamp": swTS, "Webhook-Signature": swSig}, wantErr: true},
		{name: "standard webhooks truncated signature", now: at(swTS, 0),
			verify: connector.VerifyConfig{Preset: "standard_webhooks", Secrets: []string{swSecret}},
			body:   swBody, headers: map[string]string{"Webhook-Id": swID, "Webhook-Timestamp": swTS, "Webhook-Signature": swSig[:len(swSig)-4]}, wantErr: true},

		{name: "stripe signed payload", now: at(stripeTS, 10*time.Second),
			verify: connector.VerifyConfig{Preset: "stripe", Secrets: []string{stripeSecret}},
			body:   stripeBody, headers: map[string]string{"Stripe-Signature": "t=" + stripeTS + ",v1=" + stripeV1 + ",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"}},
		{name: "stripe second v1 matches", now: at(stripeTS, 0),
			verify: connector.VerifyConfig{Preset: "stripe", Secrets: []string{stripeSecret}},
			body:   stripeBody, headers: map[string]string{"Stripe-Signature": "t=" + stripeTS + ",v1=00ff,v1=" + stripeV1}},
		{name: "stripe replayed after tolerance", now: at(stripeTS, 301*time.Second),
			verify: connector.VerifyConfig{Preset: "stripe", Secrets: []string{stripeSecret}},
			body:   stripeBody, headers: map[string]string{"Stripe-Signature": "t=" + stripeTS + ",v1=" + stripeV1}, wantErr: true},
		{name: "stripe custom tolerance", now: at(stripeTS, 301*time.Second),
			verify: connector.VerifyConfig{Preset: "stripe", Secrets: []string{stripeSecret}, Tolerance: 10 * time.Minute},
			body:   stripeBody, headers: map[string]string{"Stripe-Signature": "t=" + stripeTS + ",v1=" + stripeV1}},
		{name: "stripe timestamp swapped", now: at(stripeTS, 0),
			verify: connector.VerifyConfig{Preset: "stripe", Secrets: []string{stripeSecret}},
			body:   stripeBody, headers: map[string]string{"Stripe-Signature": "t=1700000001,v1=" + stripeV1}, wantErr: true},
		{name: "stripe no v1", now: at(stripeTS, 0),
			verify: connector.VerifyConfig{Preset: "stripe", Secrets: []string{stripeSecret}},
			body:   stripeBody, headers: map[string]string{"Stripe-Signature": "t=" + stripeTS}, wantErr: true},
		{name: "stripe missing header", now: at(stripeTS, 0),
			verify: connector.VerifyConfig{Preset: "stripe", Secrets: []string{stripeSecret}},
			body:   stripeBody, wantErr: true},

		{name: "shopify", verify: connector.VerifyConfig{Preset: "shopify", Secrets: []string{shopifySecret}},
			body: shopifyBody, headers: map[string]string{"X-Shopify-Hmac-Sha256": shopifySig}},
		{name: "shopify wrong secret", verify: connector.VerifyConfig{Preset: "shopify", Secrets: []string{"x"}},
			body: shopifyBody, headers: map[string]string{"X-Shopify-Hmac-Sha256": shopifySig}, wantErr: true},
		{name: "shopify not base64", verify: connector.VerifyConfig{Preset: "shopify", Secrets: []string{shopifySecret}},
			body: shopifyBody, headers: map[string]string{"X-Shopify-Hmac-Sha256": "!!"}, wantErr: true},

		{name: "hmac sha1 hex", verify: connector.VerifyConfig{Preset: "hmac", Secrets: []string{"k1"}, Algorithm: "sha1", Encoding: "hex", Header: "X-Sig"},
			body: "payload", headers: map[string]string{"X-Sig": "d205924b98446f173f55bcf5dd2f25c196d1ef45"}},
		{name: "hmac sha512 base64 with prefix", verify: connector.VerifyConfig{Preset: "hmac", Secrets: []string{"k1"}, Algorithm: "sha512", Encoding: "base64", Header: "X-Sig", Prefix: "sha512="},
			body: "payload", headers: map[string]string{"X-Sig": "sha512=6OJuMYlhO4b8uNmF8PWi/ygljuD3hXmDfdrPZ32ed9+WSvoKWOZfxTJcs7TroaQUrielrUewLK3BIXysacsmww=="}},
		{name: "hmac wrong algorithm", verify: connector.VerifyConfig{Preset: "hmac", Secrets: []string{"k1"}, Algorithm: "sha256", Encoding: "hex", Header: "X-Sig"},
			body: "payload", headers: map[string]string{"X-Sig": "d205924b98446f173f55bcf5dd2f25c196d1ef45"}, wantErr: true},

		{name: "basic", verify: connector.VerifyConfig{Preset: "basic", Username: "erp", Secrets: []string{"old", "pw"}},
			headers: map[string]string{"Authorization": basic("erp", "pw")}},
		{name: "basic wrong user", verify: connector.VerifyConfig{Preset: "basic", Username: "erp", Secrets: []string{"pw"}},
			headers: map[string]string{"Authorization": basic("other", "pw")}, wantErr: true},
		{name: "basic wrong password", verify: connector.VerifyConfig{Preset: "basic", Username: "erp", Secrets: []string{"pw"}},
			headers: map[string]string{"Authorization": basic("erp", "pw2")}, wantErr: true},
		{name: "basic missing", verify: connector.VerifyConfig{Preset: "basic", Username: "erp", Secrets: []string{"pw"}}, wantErr: true},
		{name: "bearer", verify: connector.VerifyConfig{Preset: "bearer", Secrets: []string{"tok"}},
			headers: map[string]string{"Authorization": "Bearer tok"}},
		{name: "bearer prefix of token", verify: connector.VerifyConfig{Preset: "bearer", Secrets: []string{"tok"}},
			headers: map[string]string{"Authorization": "Bearer to"}, wantErr: true},
		{name: "bearer as basic", verify: connector.VerifyConfig{Preset: "bearer", Secrets: []string{"tok"}},
			headers: map[string]string{"Authorization": basic("u", "tok")}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.verify.Algorithm == "" {
				tt.verify.Algorithm = "sha256"
			}
			v, err := connector.NewVerifier(tt.verify, tt.now)
			if err != nil {
				t.Fatalf("NewVerifier() error = %v", err)
			}
			req, _ := http.NewRequest(http.MethodPost, "http://example.test/hooks", strings.NewReader(tt.body))
			for k, val := range tt.headers {
				req.Header.Set(k, val)
			}
			err = v.Verify(req, []byte(tt.body))
			if tt.wantErr {
				if !errors.Is(err, webhook.ErrUnverified) {
					t.Fatalf("Verify() = %v, want an error wrapping ErrUnverified", err)
				}
				for _, s := range tt.verify.Secrets {
					if len(s) > 3 && strings.Contains(err.Error(), s) {
						t.Errorf("error %q quotes a secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify() = %v, want nil", err)
			}
		})
	}
}

// TestEveryPresetConfigures: every preset verify.preset declares has its
// verifier, and each takes its settings from the same declared keys.
func TestEveryPresetConfigures(t *testing.T) {
	presets := connector.Presets()
	if len(presets) == 0 {
		t.Fatal("Presets() is empty")
	}
	for _, p := range presets {
		t.Run(p, func(t *testing.T) {
			src := connector.New()
			err := src.Configure(core.NewConfig("hooks", map[string]any{
				"path": "/hooks/" + p,
				"verify": map[string]any{
					"preset": p, "secrets": []any{swSecret}, "header": "X-Signature", "username": "erp",
				},
			}))
			if err != nil {
				t.Fatalf("Configure(preset %s) = %v", p, err)
			}
			if got := src.Status()["verify"]; got != p {
				t.Errorf("Status()[verify] = %v, want %s", got, p)
			}
		})
	}
}

func FuzzStripeSignatureHeader(f *testing.F) {
	for _, s := range []string{"t=" + stripeTS + ",v1=" + stripeV1, "t=1,v1=zz", "", ",,,", "t=,v1=", "v1=00,t=1,t=2", "t=1,v0=00,v1=00,v1=ff"} {
		f.Add(s)
	}
	v, err := connector.NewVerifier(connector.VerifyConfig{Preset: "stripe", Secrets: []string{stripeSecret}}, at(stripeTS, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string) {
		h, err := connector.ParseStripeHeader(header)
		if err == nil && (h.Timestamp == "" || len(h.Signatures) == 0) {
			t.Fatalf("ParseStripeHeader(%q) = %+v without error", header, h)
		}
		req, _ := http.NewRequest(http.MethodPost, "http://example.test/", nil)
		req.Header.Set("Stripe-Signature", header)
		if v.Verify(req, []byte(stripeBody)) == nil && !strings.Contains(header, stripeV1) {
			t.Fatalf("header %q verified without the signature", header)
		}
	})
}

func FuzzStandardWebhooksHeader(f *testing.F) {
	for _, s := range []string{swSig, "v1,", "v1", "", "v2,abc v1,!!", swSig + " " + swSig, "v1,====", "\x00,\x00"} {
		f.Add(s)
	}
	v, err := connector.NewVerifier(connector.VerifyConfig{Preset: "standard_webhooks", Secrets: []string{swSecret}}, at(swTS, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header string) {
		sigs, err := connector.ParseStandardSignatures(header)
		if err == nil && len(sigs) == 0 {
			t.Fatalf("ParseStandardSignatures(%q) returned no signature and no error", header)
		}
		req, _ := http.NewRequest(http.MethodPost, "http://example.test/", nil)
		req.Header.Set("Webhook-Id", swID)
		req.Header.Set("Webhook-Timestamp", swTS)
		req.Header.Set("Webhook-Signature", header)
		_ = v.Verify(req, []byte(swBody))
	})
}

// TestHMACVerifierConcurrent checks deliveries signed with either of two
// secrets, and forged ones, from many goroutines at once: the verifier
// recycles its HMAC states, and no answer may depend on what another
// delivery left in them.
func TestHMACVerifierConcurrent(t *testing.T) {
	secrets := []string{"first-secret", "second-secret"}
	v, err := connector.NewVerifier(connector.VerifyConfig{
		Preset: connector.PresetHMAC, Secrets: secrets, Algorithm: "sha256",
		Encoding: "hex", Header: "X-Signature", Prefix: "sha256=",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(secret, body string) string {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(body))
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				body := fmt.Sprintf(`{"g":%d,"i":%d,"pad":%q}`, g, i, strings.Repeat("x", i))
				secret, want := secrets[i%2], true
				if i%3 == 0 {
					secret, want = "forged", false
				}
				req, _ := http.NewRequest(http.MethodPost, "/hooks", nil)
				req.Header.Set("X-Signature", sign(secret, body))
				if got := v.Verify(req, []byte(body)) == nil; got != want {
					wrong.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := wrong.Load(); n > 0 {
		t.Fatalf("%d of 2400 deliveries verified wrongly", n)
	}
}

// TestHMACVerifierAllocations checks that verifying a hex HMAC-SHA256
// delivery allocates nothing: the pooled state holds the sum and the
// signature is decoded on the stack (the sidecar verifies every delivery).
// Upper-case hex, a bad digit and an odd length decode as before.
func TestHMACVerifierAllocations(t *testing.T) {
	v, err := connector.NewVerifier(connector.VerifyConfig{
		Preset: connector.PresetHMAC, Secrets: []string{githubSecret}, Algorithm: "sha256",
		Encoding: "hex", Header: "X-Hub-Signature-256", Prefix: "sha256=",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "/hooks", nil)
	body := []byte(githubBody)
	tests := []struct {
		name, sig string
		ok        bool
	}{
		{name: "lower case", sig: githubSig, ok: true},
		{name: "upper case", sig: "sha256=" + strings.ToUpper(strings.TrimPrefix(githubSig, "sha256=")), ok: true},
		{name: "bad digit", sig: githubSig[:len(githubSig)-1] + "g"},
		{name: "odd length", sig: githubSig[:len(githubSig)-1]},
		{name: "longer than any sum", sig: githubSig + strings.Repeat("00", 64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req.Header.Set("X-Hub-Signature-256", tt.sig)
			if err := v.Verify(req, body); (err == nil) != tt.ok {
				t.Fatalf("Verify() error = %v, want ok %v", err, tt.ok)
			}
		})
	}
	req.Header.Set("X-Hub-Signature-256", githubSig)
	n := testing.AllocsPerRun(200, func() {
		if err := v.Verify(req, body); err != nil {
			t.Fatal(err)
		}
	})
	switch {
	case raceEnabled:
		// The race detector's sync.Pool drops states at random: the
		// count says nothing of Verify's own allocations.
		t.Logf("Verify allocates %v times per delivery under the race detector", n)
	case n > 0:
		t.Errorf("Verify allocates %v times per delivery, want 0", n)
	}
}
