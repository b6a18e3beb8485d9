package http_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	sink "github.com/tributary/tributary/connectors/http"
	"github.com/tributary/tributary/core"
)

// TestOutcomes: each answer of the endpoint gives the Result the README
// promises: 2xx delivered; 410 stops the sink (core.ErrSinkGone); 429 and
// 503 retried after their Retry-After; 408 and 5xx retried; any other
// status failed, for the dead-letter topic, unless listed in
// retry_statuses.
func TestOutcomes(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name           string
		status         int
		header         map[string]string
		body           string
		retryStatuses  []any
		want           core.Status
		wantRetryAfter time.Duration
		wantGone       bool
		wantErr        string
		wantResponse   string
	}{
		{name: "200", status: 200, want: core.StatusDelivered, wantResponse: "HTTP/1.1 200 OK"},
		{name: "201", status: 201, want: core.StatusDelivered},
		{name: "202", status: 202, want: core.StatusDelivered},
		{name: "204", status: 204, want: core.StatusDelivered},
		{name: "410 gone stops the sink", status: 410, body: "endpoint removed", want: core.StatusRetry, wantGone: true,
			wantErr: "the endpoint answered 410 Gone: it was removed; fix url and restart the sink", wantResponse: "HTTP/1.1 410 Gone\nendpoint removed"},
		{name: "429 retry-after seconds", status: 429, header: map[string]string{"Retry-After": "120"}, want: core.StatusRetry, wantRetryAfter: 2 * time.Minute, wantErr: "429 Too Many Requests"},
		{name: "503 retry-after date", status: 503, header: map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, want: core.StatusRetry, wantRetryAfter: 90 * time.Second},
		{name: "503 no retry-after", status: 503, want: core.StatusRetry},
		{name: "429 retry-after unreadable", status: 429, header: map[string]string{"Retry-After": "soon"}, want: core.StatusRetry},
		{name: "408", status: 408, want: core.StatusRetry},
		{name: "500", status: 500, body: "boom", want: core.StatusRetry, wantResponse: "HTTP/1.1 500 Internal Server Error\nboom"},
		{name: "502", status: 502, want: core.StatusRetry},
		{name: "504", status: 504, want: core.StatusRetry},
		{name: "400 fails", status: 400, body: `{"error":"total is negative"}`, want: core.StatusFailed,
			wantErr: "400 Bad Request", wantResponse: "HTTP/1.1 400 Bad Request\n{\"error\":\"total is negative\"}"},
		{name: "401 fails naming auth", status: 401, want: core.StatusFailed, wantErr: "check auth"},
		{name: "404 fails naming url", status: 404, want: core.StatusFailed, wantErr: "check url"},
		{name: "422 fails", status: 422, want: core.StatusFailed},
		{name: "301 is not followed", status: 301, header: map[string]string{"Location": "/elsewhere"}, want: core.StatusFailed, wantErr: "redirects are not followed"},
		{name: "409 in retry_statuses", status: 409, retryStatuses: []any{"409"}, want: core.StatusRetry, wantErr: "retry_statuses"},
		{name: "404 in retry_statuses", status: 404, retryStatuses: []any{"409", "404"}, want: core.StatusRetry},
		{name: "410 in retry_statuses is retried, not gone", status: 410, retryStatuses: []any{"410"}, want: core.StatusRetry},
		{name: "422 not in retry_statuses", status: 422, retryStatuses: []any{"409"}, want: core.StatusFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			values := map[string]any{"url": rc.URL + "/hooks"}
			if tt.retryStatuses != nil {
				values["retry_statuses"] = tt.retryStatuses
			}
			s := openWith(t, sink.NewWithClock(func() time.Time { return now }), values)
			rs := writeWithin(t, s, context.Background(), deliveries(event("e-1", "A-1", map[string]any{"total": 5})))
			r := rs[0]
			if r.Status != tt.want {
				t.Fatalf("Status = %v, want %v (err %v)", r.Status, tt.want, r.Err)
			}
			if r.RetryAfter != tt.wantRetryAfter {
				t.Errorf("RetryAfter = %v, want %v", r.RetryAfter, tt.wantRetryAfter)
			}
			if got := errors.Is(r.Err, core.ErrSinkGone); got != tt.wantGone {
				t.Errorf("errors.Is(err, ErrSinkGone) = %v, want %v (err %v)", got, tt.wantGone, r.Err)
			}
			if (r.Err == nil) != (tt.want == core.StatusDelivered) {
				t.Errorf("Err = %v with status %v", r.Err, r.Status)
			}
			if tt.wantErr != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tt.wantErr)) {
				t.Errorf("Err = %v, want it to say %q", r.Err, tt.wantErr)
			}
			if r.Err != nil && !strings.Contains(r.Err.Error(), "POST "+rc.URL+"/hooks") {
				t.Errorf("Err = %v, want it to name the request", r.Err)
			}
			if tt.wantResponse != "" && r.Response != tt.wantResponse {
				t.Errorf("Response = %q, want %q", r.Response, tt.wantResponse)
			}
			if !strings.HasPrefix(r.Response, "HTTP/1.1 ") {
				t.Errorf("Response = %q, want the status line first", r.Response)
			}
		})
	}
}

// TestNetworkErrorIsRetried: an endpoint that cannot be reached is
// retried later, with an error naming the request.
func TestNetworkErrorIsRetried(t *testing.T) {
	rc := newReceiver(t, nil)
	url := rc.URL + "/hooks"
	rc.Close()
	s := open(t, map[string]any{"url": url})
	rs := writeWithin(t, s, context.Background(), deliveries(event("e-1", "A-1", nil)))
	if rs[0].Status != core.StatusRetry || rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), "POST "+url) {
		t.Fatalf("result = %+v, want a retry naming POST %s", rs[0], url)
	}
}

// TestTimeoutIsRetried: an endpoint slower than timeout is retried.
func TestTimeoutIsRetried(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	s := open(t, map[string]any{"url": rc.URL, "timeout": "50ms"})
	rs := writeWithin(t, s, context.Background(), deliveries(event("e-1", "A-1", nil)))
	if rs[0].Status != core.StatusRetry || rs[0].Err == nil {
		t.Fatalf("result = %+v, want a retry", rs[0])
	}
}

// TestResponseKeepsTheStartOfTheBody: a Result keeps the status line and
// the first 512 bytes of the body, as valid UTF-8.
func TestResponseKeepsTheStartOfTheBody(t *testing.T) {
	body := strings.Repeat("é", 1000) // 2000 bytes
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(body))
	})
	s := open(t, map[string]any{"url": rc.URL})
	r := writeWithin(t, s, context.Background(), deliveries(event("e-1", "A-1", nil)))[0]
	line, shownBody, _ := strings.Cut(r.Response, "\n")
	if line != "HTTP/1.1 400 Bad Request" {
		t.Errorf("status line = %q", line)
	}
	if len(shownBody) != 512 || !strings.HasPrefix(body, shownBody) {
		t.Errorf("body shown = %d bytes, want the first 512 of the answer", len(shownBody))
	}
}

// TestSecretsAreNeverShown: an endpoint that echoes the request it refuses
// (credentials, signature and all) gets them hidden in the Result, and no
// error quotes them.
func TestSecretsAreNeverShown(t *testing.T) {
	const (
		token  = "tok-3f9a8c7d6e5b"
		apiKey = "key-0123456789"
		secret = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMw=="
		sigKey = "c2VjcmV0LXNpZ25pbmcta2V5LTEyMw=="
		dynKey = "from-the-event-9876"
	)
	echo := func(w http.ResponseWriter, r *http.Request, body []byte) {
		w.WriteHeader(http.StatusBadRequest)
		for _, h := range []string{"Authorization", "X-Api-Key", "X-Partner-Token", "Webhook-Signature"} {
			_, _ = w.Write([]byte(h + "=" + r.Header.Get(h) + "; "))
		}
		_, _ = w.Write([]byte("configured with " + secret + " and " + sigKey))
	}
	tests := []struct {
		name   string
		values map[string]any
		hidden []string
	}{
		{name: "bearer, api key and signing secret", values: map[string]any{
			"auth":            map[string]any{"bearer": token},
			"headers":         map[string]any{"X-Api-Key": apiKey, "X-Partner-Token": "{{ event.data.token }}"},
			"signing_secrets": []any{secret},
		}, hidden: []string{token, apiKey, secret, sigKey, dynKey}},
		{name: "basic", values: map[string]any{
			"auth": map[string]any{"basic": map[string]any{"username": "tributary", "password": "pw-5e4d3c2b1a"}},
		}, hidden: []string{"pw-5e4d3c2b1a", "dHJpYnV0YXJ5OnB3LTVlNGQzYzJiMWE="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, echo)
			tt.values["url"] = rc.URL + "/hooks?token=" + token
			s := open(t, tt.values)
			r := writeWithin(t, s, context.Background(), deliveries(event("e-1", "A-1", map[string]any{"token": dynKey})))[0]
			if r.Status != core.StatusFailed {
				t.Fatalf("Status = %v, want failed", r.Status)
			}
			if !strings.Contains(r.Response, "REDACTED") {
				t.Errorf("Response = %q, want the echoed secrets REDACTED", r.Response)
			}
			for _, h := range tt.hidden {
				if strings.Contains(r.Response, h) || strings.Contains(r.Err.Error(), h) {
					t.Errorf("secret %q shown: Response %q, Err %v", h, r.Response, r.Err)
				}
			}
			if strings.Contains(r.Err.Error(), token) {
				t.Errorf("Err quotes the URL's query: %v", r.Err)
			}
		})
	}
}
