package http

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
)

// Content types of the bodies.
const (
	contentTypeCloudEvent = "application/cloudevents+json; charset=utf-8"
	contentTypeJSON       = "application/json"
)

// request builds the request of d: its URL, body and headers, all but the
// signature, which sign adds when the request is about to go. hidden are
// the rendered values of d's credential headers, for the redactor. An
// error is one retrying cannot fix: an expression that fails on this
// event, a body that does not encode.
func (s *Sink) request(ctx context.Context, env *rules.EventEnv, d core.Delivery) (req *http.Request, body []byte, hidden []string, err error) {
	ev := d.Event
	if env != nil {
		env.Reset(ev, s.name)
	}
	target, err := s.url.render(env)
	if err != nil {
		return nil, nil, nil, err
	}
	body, contentType, err := s.body(d)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("event %s: %w", ev.ID, err)
	}
	req, err = http.NewRequestWithContext(ctx, s.cfg.Method, target, bytes.NewReader(body))
	if err != nil {
		// The error quotes the URL, whose query may hold a token.
		return nil, nil, nil, fmt.Errorf("event %s: url renders to %q, which is not a URL", ev.ID, shown(target))
	}
	h := req.Header
	h["Content-Type"] = []string{contentType}
	h["User-Agent"] = []string{"tributary"}
	if s.cfg.Body == BodyBinary {
		binaryHeaders(h, ev)
	}
	if ev.TraceParent != "" {
		h["Traceparent"] = []string{ev.TraceParent}
		if ev.TraceState != "" {
			h["Tracestate"] = []string{ev.TraceState}
		}
	}
	for _, hd := range s.headers {
		v, err := hd.value.render(env)
		if err != nil {
			return nil, nil, nil, err
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, nil, nil, fmt.Errorf("event %s: header %s renders to a value with a line break", ev.ID, hd.name)
		}
		if hd.sensitive && hd.value.dynamic() {
			hidden = append(hidden, v)
		}
		h[hd.name] = []string{v}
	}
	if s.auth != "" {
		h["Authorization"] = []string{s.auth}
	}
	return req, body, hidden, nil
}

// body encodes d as the configured body mode says, with its content type.
func (s *Sink) body(d core.Delivery) ([]byte, string, error) {
	ev := d.Event
	switch s.cfg.Body {
	case BodyBinary:
		ct := ev.DataContentType
		if ct == "" {
			ct = contentTypeJSON
		}
		return ev.Data, ct, nil
	case BodyMapped:
		if d.Data == nil {
			// No map: the event's data as it is.
			if len(ev.Data) == 0 {
				return []byte("null"), contentTypeJSON, nil
			}
			return ev.Data, contentTypeJSON, nil
		}
		b, err := json.Marshal(d.Data)
		if err != nil {
			return nil, "", fmt.Errorf("encode the mapped body as JSON: %w", err)
		}
		return b, contentTypeJSON, nil
	}
	b, err := ev.MarshalStructured()
	if err != nil {
		return nil, "", fmt.Errorf("encode the event as CloudEvents JSON: %w", err)
	}
	return b, contentTypeCloudEvent, nil
}

// binaryHeaders writes ev's attributes as the CloudEvents HTTP binding's
// binary mode has them: ce-<attribute> headers, percent-encoded, and the
// data content type as Content-Type (set by body).
func binaryHeaders(h http.Header, ev *core.Event) {
	h["Ce-Id"] = []string{pctEncode(ev.ID)}
	ev.EachAttribute(func(key, value string, t time.Time) {
		switch key {
		case core.HeaderContentType, core.HeaderTraceParent, core.HeaderTraceState:
			// Content-Type and the W3C traceparent and tracestate
			// headers carry them.
			return
		case core.HeaderTime:
			value = t.UTC().Format(time.RFC3339Nano)
		}
		h[ceHeader(key)] = []string{pctEncode(value)}
	})
}

// ceHeaderNames maps the stream's attribute keys (ce_type) to the HTTP
// binding's header names, in canonical form.
var ceHeaderNames = map[string]string{
	core.HeaderSource:       "Ce-Source",
	core.HeaderSpecVersion:  "Ce-Specversion",
	core.HeaderType:         "Ce-Type",
	core.HeaderSubject:      "Ce-Subject",
	core.HeaderTime:         "Ce-Time",
	core.HeaderDataSchema:   "Ce-Dataschema",
	core.HeaderPartitionKey: "Ce-Partitionkey",
}

// ceHeader returns the HTTP header name of the attribute key (ce_name).
func ceHeader(key string) string {
	if name, ok := ceHeaderNames[key]; ok {
		return name
	}
	return http.CanonicalHeaderKey("ce-" + strings.TrimPrefix(key, "ce_"))
}

// pctEncode percent-encodes an attribute value for a ce-* header, as the
// CloudEvents HTTP binding says: space, '"', '%' and every byte outside
// printable ASCII.
func pctEncode(s string) string {
	i := 0
	for i < len(s) && s[i] > ' ' && s[i] < 0x7f && s[i] != '"' && s[i] != '%' {
		i++
	}
	if i == len(s) {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+16)
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c > ' ' && c < 0x7f && c != '"' && c != '%' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&0xf])
	}
	return string(b)
}

// sign adds the Standard Webhooks headers to req: webhook-id (the event
// id, so that the receiver can drop duplicates), webhook-timestamp (now, in
// Unix seconds) and webhook-signature, one "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>" per secret, separated by spaces.
func (s *Sink) sign(req *http.Request, id string, body []byte) {
	ts := strconv.FormatInt(s.now().Unix(), 10)
	req.Header[headerWebhookID] = []string{id}
	req.Header[headerWebhookTimestamp] = []string{ts}
	req.Header[headerWebhookSignature] = []string{signature(s.keys, id, ts, body)}
}

// signature returns the webhook-signature value of id, ts and body under
// keys.
func signature(keys [][]byte, id, ts string, body []byte) string {
	out := make([]byte, 0, len(keys)*48)
	for i, k := range keys {
		if i > 0 {
			out = append(out, ' ')
		}
		m := hmac.New(sha256.New, k)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write([]byte(ts))
		m.Write([]byte{'.'})
		m.Write(body)
		out = append(out, "v1,"...)
		out = base64.StdEncoding.AppendEncode(out, m.Sum(nil))
	}
	return string(out)
}

// shown is a URL for messages: scheme, host and path, without query or
// fragment, which may carry a token; text that does not parse is cut.
func shown(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			raw = raw[:i]
		}
		return raw
	}
	return endpoint(u)
}
