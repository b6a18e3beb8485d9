package rest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-resty/resty/v2"
	"golang.org/x/time/rate"

	"github.com/tributary/tributary/core"
)

// client sends the connector's requests: authenticated, rate limited,
// retried with backoff, Retry-After honoured.
type client struct {
	cfg     *Config
	http    *resty.Client
	limiter *rate.Limiter
	redact  *redactor
	// metrics counts the answers; nil until the connector opens.
	metrics atomic.Pointer[httpMetrics]

	tokMu   sync.Mutex
	token   string
	expires time.Time
}

func newClient(cfg *Config) *client {
	hc := resty.New().SetDisableWarn(true).SetLogger(quiet{}).SetTimeout(cfg.Timeout).SetRedirectPolicy(resty.FlexibleRedirectPolicy(5))
	c := &client{cfg: cfg, http: hc, redact: newRedactor(cfg)}
	if cfg.RateLimit > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), cfg.RateBurst)
	}
	return c
}

func (c *client) close() { c.http.GetClient().CloseIdleConnections() }

// request is one HTTP request to send.
type request struct {
	method string
	url    string
	query  url.Values
	header map[string]string
	body   string
}

// response is what a request returned.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends req, retrying network errors, 408, 429 and 5xx; any other 4xx
// stops the connector (core.Fatal).
func (c *client) do(ctx context.Context, req request) (*response, error) {
	var last error
	refreshed := false
	for attempt := 0; ; attempt++ {
		if c.limiter != nil {
			if err := c.limiter.Wait(ctx); err != nil {
				return nil, err
			}
		}
		resp, err := c.once(ctx, req)
		var wait time.Duration
		told := false
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			last = fmt.Errorf("%s %s: %w", req.method, c.redact.url(req.url), err)
		case resp.status == http.StatusUnauthorized && c.cfg.Auth.Type == AuthOAuth2 && !refreshed:
			// The token expired early or was revoked: get a new one, once.
			c.invalidate()
			refreshed = true
			attempt--
			continue
		case resp.status == http.StatusTooManyRequests || resp.status == http.StatusServiceUnavailable:
			last = fmt.Errorf("%s %s: status %d", req.method, c.redact.url(req.url), resp.status)
			if ra, ok := retryAfter(resp.header.Get("Retry-After"), time.Now()); ok {
				if ra > c.cfg.RetryMaxWait {
					return nil, &core.RetryError{After: ra, Err: last}
				}
				wait, told = ra, true
			}
		case resp.status >= 500 || resp.status == http.StatusRequestTimeout:
			last = fmt.Errorf("%s %s: status %d", req.method, c.redact.url(req.url), resp.status)
		case resp.status >= 400:
			// An API may quote the request it refuses, credentials
			// included.
			msg := c.redact.text(strings.TrimSpace(string(resp.body)))
			if len(msg) > 200 {
				msg = msg[:200] + "..."
			}
			err := fmt.Errorf("%s %s: status %d: %s", req.method, c.redact.url(req.url), resp.status, msg)
			if resp.status == http.StatusUnauthorized || resp.status == http.StatusForbidden {
				return nil, core.Fatal(fmt.Errorf("%w (check auth)", err))
			}
			return nil, core.Fatal(fmt.Errorf("%w (check url, query and body)", err))
		default:
			return resp, nil
		}
		if attempt >= c.cfg.Retries {
			return nil, fmt.Errorf("after %d attempts: %w", attempt+1, last)
		}
		if !told {
			wait = backoff(c.cfg.RetryWait, c.cfg.RetryMaxWait, attempt)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}

// backoff is the wait before retry n: doubling from base, capped, with
// jitter in [wait/2, wait].
func backoff(base, limit time.Duration, n int) time.Duration {
	d := base << min(n, 20)
	if d > limit || d <= 0 {
		d = limit
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

func (c *client) once(ctx context.Context, req request) (*response, error) {
	r := c.http.R().SetContext(ctx).SetHeaders(req.header)
	q := url.Values{}
	for k, v := range req.query {
		q[k] = v
	}
	switch c.cfg.Auth.Type {
	case AuthBasic:
		r.SetBasicAuth(c.cfg.Auth.Username, c.cfg.Auth.Password)
	case AuthBearer:
		r.SetAuthToken(c.cfg.Auth.Token)
	case AuthAPIKey:
		if c.cfg.Auth.Header != "" {
			r.SetHeader(c.cfg.Auth.Header, c.cfg.Auth.Key)
		} else {
			q.Set(c.cfg.Auth.QueryParam, c.cfg.Auth.Key)
		}
	case AuthOAuth2:
		tok, err := c.oauthToken(ctx)
		if err != nil {
			return nil, err
		}
		r.SetAuthToken(tok)
	}
	r.SetQueryParamsFromValues(q)
	if req.body != "" {
		r.SetBody(req.body)
	}
	resp, err := r.Execute(req.method, req.url)
	if err != nil {
		return nil, c.redact.request(err)
	}
	c.count(resp.StatusCode(), resp.Header())
	return &response{status: resp.StatusCode(), header: resp.Header(), body: resp.Body()}, nil
}

func (c *client) invalidate() {
	c.tokMu.Lock()
	c.token = ""
	c.tokMu.Unlock()
}

// oauthToken returns a client-credentials token, fetching a new one when
// the cached one is missing or within 10% (at least 5s) of its expiry.
func (c *client) oauthToken(ctx context.Context) (string, error) {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	if c.token != "" && time.Now().Before(c.expires) {
		return c.token, nil
	}
	a := c.cfg.Auth
	form := map[string]string{"grant_type": "client_credentials"}
	if len(a.Scopes) > 0 {
		form["scope"] = strings.Join(a.Scopes, " ")
	}
	resp, err := c.http.R().SetContext(ctx).SetBasicAuth(url.QueryEscape(a.ClientID), url.QueryEscape(a.ClientSecret)).
		SetHeader("Accept", "application/json").SetFormData(form).Post(a.TokenURL)
	if err != nil {
		return "", fmt.Errorf("get oauth2 token from %s: %w", c.redact.url(a.TokenURL), c.redact.request(err))
	}
	c.count(resp.StatusCode(), resp.Header())
	if resp.StatusCode() != http.StatusOK {
		err := fmt.Errorf("get oauth2 token from %s: status %d", c.redact.url(a.TokenURL), resp.StatusCode())
		if resp.StatusCode() == http.StatusUnauthorized || resp.StatusCode() == http.StatusBadRequest || resp.StatusCode() == http.StatusForbidden {
			return "", core.Fatal(fmt.Errorf("%w (check auth.client_id and auth.client_secret)", err))
		}
		return "", err
	}
	var tok struct {
		AccessToken string          `json:"access_token"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(resp.Body(), &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("get oauth2 token from %s: the answer has no access_token", c.redact.url(a.TokenURL))
	}
	life := time.Hour
	if n, err := strconv.ParseFloat(strings.Trim(string(tok.ExpiresIn), `"`), 64); err == nil && n > 0 {
		life = time.Duration(n * float64(time.Second))
	}
	skew := max(life/10, min(5*time.Second, life/2))
	c.token, c.expires = tok.AccessToken, time.Now().Add(life-skew)
	return c.token, nil
}

// quiet discards resty's own log lines: errors reach the runtime as values.
type quiet struct{}

func (quiet) Errorf(string, ...any) {}
func (quiet) Warnf(string, ...any)  {}
func (quiet) Debugf(string, ...any) {}
