package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
)

// responseBodyShown is how much of an answer's body a Result keeps.
const responseBodyShown = 512

// drainLimit is how much of an answer's body is read and dropped so that
// its connection can carry the next request; a longer body closes it.
const drainLimit = 64 << 10

// Write delivers ds: the deliveries of one partition key one after
// another, in order, and those of different keys in parallel, with at most
// max_concurrency requests in flight across all Writes. Once a delivery of
// a key is not delivered, the later ones of that key are not attempted
// (StatusRetry, no error). Write is safe for concurrent use and returns
// promptly once ctx is done, with StatusRetry for what it did not deliver.
func (s *Sink) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	return s.WriteReporting(ctx, ds, nil)
}

// WriteReporting is Write that tells report the results of each key's
// deliveries as soon as the last of them is done (see
// core.ReportingSink), so that a key waiting for a slow endpoint does not
// hold the other keys of the batch. report may be nil.
func (s *Sink) WriteReporting(ctx context.Context, ds []core.Delivery, report func(int, core.Result)) []core.Result {
	out := make([]core.Result, len(ds))
	c := s.use()
	if c == nil {
		err := fmt.Errorf("http sink %q is not open", s.name)
		for i := range out {
			out[i] = core.Result{Status: core.StatusRetry, Err: err}
		}
		return out
	}
	defer c.done()
	groups := byKey(ds)
	workers := min(len(groups), cap(s.slots))
	if workers <= 1 {
		for _, g := range groups {
			s.deliverKey(ctx, c, ds, g, out, report)
		}
		return out
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(groups) {
					return
				}
				s.deliverKey(ctx, c, ds, groups[i], out, report)
			}
		})
	}
	wg.Wait()
	return out
}

// byKey returns the indexes of ds grouped by partition key, each group in
// stream order, the groups in the order of their first delivery.
func byKey(ds []core.Delivery) [][]int {
	if len(ds) == 0 {
		return nil
	}
	first := ds[0].Event.PartitionKey
	same := true
	for _, d := range ds[1:] {
		if d.Event.PartitionKey != first {
			same = false
			break
		}
	}
	if same {
		all := make([]int, len(ds))
		for i := range all {
			all[i] = i
		}
		return [][]int{all}
	}
	index := make(map[string]int, len(ds))
	var groups [][]int
	for i, d := range ds {
		g, ok := index[d.Event.PartitionKey]
		if !ok {
			g = len(groups)
			index[d.Event.PartitionKey] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// deliverKey delivers the deliveries of one key, at the indexes idx of ds,
// one after another, writing their results to out and then, when report
// is not nil, telling them to it; it stops at the first that is not
// delivered.
func (s *Sink) deliverKey(ctx context.Context, c *conn, ds []core.Delivery, idx []int, out []core.Result, report func(int, core.Result)) {
	if report != nil {
		defer func() {
			for _, i := range idx {
				report(i, out[i])
			}
		}()
	}
	var env *rules.EventEnv
	if s.dynamic {
		env = s.envs.Get().(*rules.EventEnv)
		defer func() {
			env.Reset(nil, "")
			s.envs.Put(env)
		}()
	}
	held := false
	for _, i := range idx {
		if held || ctx.Err() != nil {
			out[i] = core.Result{Status: core.StatusRetry}
			continue
		}
		out[i] = s.deliver(ctx, c, env, ds[i])
		held = out[i].Status != core.StatusDelivered
	}
}

// deliver sends one delivery and reads the endpoint's answer.
func (s *Sink) deliver(ctx context.Context, c *conn, env *rules.EventEnv, d core.Delivery) core.Result {
	req, body, hidden, err := s.request(ctx, env, d)
	if err != nil {
		return core.Result{Status: core.StatusFailed, Err: err}
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return core.Result{Status: core.StatusRetry}
	}
	defer func() { <-s.slots }()
	if s.limiter != nil {
		if err := s.limiter.Wait(ctx); err != nil {
			// ctx ends before the rate limit allows the request.
			return core.Result{Status: core.StatusRetry}
		}
	}
	if len(s.keys) > 0 {
		s.sign(req, d.Event.ID, body)
	} else {
		// Unsigned, the event id still travels, so that the receiver
		// can drop the duplicates a redelivery brings.
		req.Header[headerWebhookID] = []string{d.Event.ID}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		// url.Error quotes the URL, whose query may hold a token.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return core.Result{Status: core.StatusRetry, Err: fmt.Errorf("%s %s: %w", req.Method, endpoint(req.URL), err)}
	}
	defer resp.Body.Close()
	return s.outcome(req, resp, hidden)
}

// outcome turns the endpoint's answer into a Result: 2xx delivered; 410
// the sink stopped (core.ErrSinkGone); 429 and 503 retried after their
// Retry-After; 408, 5xx and retry_statuses retried; any other status
// failed, for the dead-letter topic.
func (s *Sink) outcome(req *http.Request, resp *http.Response, hidden []string) core.Result {
	code := resp.StatusCode
	line := resp.Proto + " " + resp.Status
	if code >= 200 && code < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
		return core.Result{Status: core.StatusDelivered, Response: line}
	}
	r := core.Result{Response: s.response(line, resp.Body, hidden)}
	at := req.Method + " " + endpoint(req.URL)
	switch {
	case slices.Contains(s.cfg.retry, code):
		r.Status, r.Err = core.StatusRetry, fmt.Errorf("%s: answered %s (retried: it is in retry_statuses)", at, resp.Status)
	case code == http.StatusGone:
		r.Status, r.Err = core.StatusRetry, fmt.Errorf("%s: the endpoint answered 410 Gone: it was removed; fix url and restart the sink: %w", at, core.ErrSinkGone)
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		r.Status, r.Err = core.StatusRetry, fmt.Errorf("%s: answered %s", at, resp.Status)
		r.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), s.now())
	case code == http.StatusRequestTimeout || code >= 500:
		r.Status, r.Err = core.StatusRetry, fmt.Errorf("%s: answered %s", at, resp.Status)
	default:
		r.Status, r.Err = core.StatusFailed, fmt.Errorf("%s: answered %s: %s", at, resp.Status, refusalHint(code))
	}
	return r
}

// refusalHint says what to look at when the endpoint refuses an event.
func refusalHint(code int) string {
	switch {
	case code >= 300 && code < 400:
		return "redirects are not followed; set url to where it points"
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return "check auth"
	case code == http.StatusNotFound || code == http.StatusMethodNotAllowed:
		return "check url and method"
	}
	return "the endpoint refused the event (list the status in retry_statuses to retry it instead)"
}

// response is what a Result keeps of an answer: its status line and the
// start of its body, secrets hidden. It drains the body.
func (s *Sink) response(line string, body io.Reader, hidden []string) string {
	buf := make([]byte, responseBodyShown)
	n, _ := io.ReadFull(body, buf)
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainLimit))
	text := strings.TrimSpace(strings.ToValidUTF8(string(buf[:n]), ""))
	if text != "" {
		line += "\n" + text
	}
	return s.redact.text(line, hidden...)
}

// retryAfter reads a Retry-After value: seconds, or an HTTP date. It
// returns 0 when there is none or it does not parse.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(365*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
