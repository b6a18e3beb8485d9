// Package webhook registers the "webhook" source connector: signed HTTP
// deliveries received on the sidecar's listener, verified by a provider
// preset (GitHub, Stripe, Shopify, Slack, Standard Webhooks, generic HMAC,
// basic, bearer), deduplicated by delivery id and stored in a durable inbox
// before they are answered. See README.md.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tributary/tributary/adapters/webhook"
	"github.com/tributary/tributary/core"
)

// Type is the connector type ID.
const Type = "webhook"

func init() {
	core.RegisterSource(Spec())
}

// Spec returns the connector's registration, for registries built by tests.
func Spec() core.SourceSpec {
	return core.SourceSpec{
		Type:    Type,
		Summary: "Receives signed HTTP deliveries (webhooks) and emits each as a message change, answering 2xx only once it is durably stored.",
		Config:  Config{},
		New:     func() core.Source { return New() },
	}
}

// Source is the webhook connector: a webhook.Source configured from YAML.
type Source struct {
	cfg   Config
	inner *webhook.Source
	// now is the clock of the timestamped presets and the inbox.
	now func() time.Time
}

// New returns an unconfigured source.
func New() *Source { return &Source{now: time.Now} }

// NewWithClock returns an unconfigured source whose signature timestamps and
// dedup window are measured against now; tests use it with providers'
// published examples.
func NewWithClock(now func() time.Time) *Source { return &Source{now: now} }

// Configure decodes and validates the configuration and builds the
// verifier, delivery id and handshake of the chosen preset. It does no I/O.
func (s *Source) Configure(c core.Config) error {
	cfg, err := decode(c)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	ver, err := NewVerifier(cfg.Verify, s.now)
	if err != nil {
		return &core.FieldError{Path: "verify", Err: err}
	}
	inner, err := webhook.NewSource(webhook.Config{
		Path:             cfg.Path,
		Methods:          cfg.Methods,
		MaxBodyBytes:     cfg.MaxBodyBytes,
		ContentTypes:     cfg.ContentTypes,
		Verifier:         ver,
		DeliveryID:       deliveryID(cfg),
		HooksReadPayload: hooksReadPayload(cfg),
		Handshake:        handshake(cfg),
		DedupWindow:      cfg.Dedup.Window,
		DedupMemoryIDs:   cfg.Dedup.MemoryIDs,
		MaxPending:       cfg.MaxPending,
		MaxPendingBytes:  cfg.MaxPendingBytes,
		RetryAfter:       cfg.RetryAfter,
		AckMode:          webhook.AckMode(cfg.Ack),
		AckTimeout:       cfg.AckTimeout,
		Now:              s.now,
	})
	if err != nil {
		return &core.FieldError{Path: "path", Err: err}
	}
	s.cfg, s.inner = cfg, inner
	return nil
}

var errNotConfigured = fmt.Errorf("webhook source used before Configure")

// Open mounts the connector's path and opens its inbox; see webhook.Source.
func (s *Source) Open(ctx context.Context, env core.Env, from core.Position) error {
	if s.inner == nil {
		return core.Fatal(errNotConfigured)
	}
	return s.inner.Open(ctx, env, from)
}

// Routes returns the path the connector mounts once open, so that the
// sidecar answers it with 503 and Retry-After until then.
func (s *Source) Routes() []string {
	if s.inner == nil {
		return nil
	}
	return []string{s.cfg.Path}
}

var _ core.Ingress = (*Source)(nil)

// Read returns stored deliveries as changes; see webhook.Source.
func (s *Source) Read(ctx context.Context) ([]core.Change, error) {
	if s.inner == nil {
		return nil, core.Fatal(errNotConfigured)
	}
	return s.inner.Read(ctx)
}

// Ack releases deliveries up to pos; see webhook.Source.
func (s *Source) Ack(ctx context.Context, pos core.Position) error {
	if s.inner == nil {
		return errNotConfigured
	}
	return s.inner.Ack(ctx, pos)
}

// Drain stops intake and hands over the deliveries answered and not read
// yet, on a clean stop; see webhook.Source.Drain.
func (s *Source) Drain(ctx context.Context) ([]core.Change, error) {
	if s.inner == nil {
		return nil, nil
	}
	return s.inner.Drain(ctx)
}

// Close stops intake and closes the inbox; see webhook.Source.
func (s *Source) Close(ctx context.Context) error {
	if s.inner == nil {
		return nil
	}
	return s.inner.Close(ctx)
}

// Status reports the inbox depth.
func (s *Source) Status() map[string]any {
	if s.inner == nil {
		return map[string]any{"configured": false}
	}
	st := s.inner.Status()
	st["verify"] = s.cfg.Verify.Preset
	return st
}

// Health returns nil while the source is open.
func (s *Source) Health(ctx context.Context) error {
	if s.inner == nil {
		return errNotConfigured
	}
	return s.inner.Health(ctx)
}

// SetPayloadPaths makes the source build only the parts of JSON payloads
// the connector's rules read; see webhook.Source.SetPayloadPaths. It does
// nothing before Configure.
func (s *Source) SetPayloadPaths(paths []core.PayloadPath, all bool) {
	if s.inner != nil {
		s.inner.SetPayloadPaths(paths, all)
	}
}

var (
	_ core.Source         = (*Source)(nil)
	_ core.StatusReporter = (*Source)(nil)
	_ core.HealthChecker  = (*Source)(nil)
	_ core.PayloadPruner  = (*Source)(nil)
	_ core.Drainer        = (*Source)(nil)
)

// deliveryID returns the delivery id function: the configured header or
// field, else the preset's, else none (the adapter hashes the body).
func deliveryID(cfg Config) func(*webhook.Request) string {
	header, field := cfg.Dedup.Header, cfg.Dedup.Field
	if header == "" && field == "" {
		p := presets[cfg.Verify.Preset]
		header, field = p.idHeader, p.idField
	}
	switch {
	case header != "":
		return func(r *webhook.Request) string { return strings.TrimSpace(r.HTTP.Header.Get(header)) }
	case field != "":
		path := strings.Split(field, ".")
		return func(r *webhook.Request) string {
			p, err := r.Payload()
			if err != nil {
				return ""
			}
			return lookupString(p, path)
		}
	}
	return nil
}

// hooksReadPayload reports whether the delivery id or the handshake of
// the configuration read the body's payload: an id from a body field
// (dedup.field, or the preset's, such as Stripe's and Slack's), Slack's
// url_verification, or an echo of a JSON field.
func hooksReadPayload(cfg Config) bool {
	field := cfg.Dedup.Field
	if cfg.Dedup.Header == "" && field == "" {
		field = presets[cfg.Verify.Preset].idField
	}
	typ := cfg.Handshake.Type
	if typ == HandshakeAuto && cfg.Verify.Preset == PresetSlack {
		typ = HandshakeSlack
	}
	return field != "" || typ == HandshakeSlack || (typ == HandshakeEcho && cfg.Handshake.JSONField != "")
}

// lookupString follows a dotted path through maps and returns the value
// there as a string ("" when absent or not a scalar).
func lookupString(v any, path []string) string {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool, float64, int64:
		return fmt.Sprint(x)
	}
	return ""
}

// handshake returns the handshake function of the configuration.
func handshake(cfg Config) func(*webhook.Request) (webhook.Reply, bool) {
	typ := cfg.Handshake.Type
	if typ == HandshakeAuto {
		typ = HandshakeNone
		if cfg.Verify.Preset == PresetSlack {
			typ = HandshakeSlack
		}
	}
	switch typ {
	case HandshakeSlack:
		return slackHandshake
	case HandshakeEcho:
		q, f := cfg.Handshake.QueryParam, cfg.Handshake.JSONField
		return func(r *webhook.Request) (webhook.Reply, bool) {
			if q != "" && (r.HTTP.Method == http.MethodGet || r.HTTP.Method == http.MethodHead) {
				if c := r.HTTP.URL.Query().Get(q); c != "" {
					return webhook.Reply{ContentType: "text/plain; charset=utf-8", Body: []byte(c)}, true
				}
				return webhook.Reply{}, false
			}
			if f == "" || webhook.KindOf(r.MediaType) != webhook.KindJSON {
				return webhook.Reply{}, false
			}
			p, err := r.Payload()
			if err != nil {
				return webhook.Reply{}, false
			}
			m, ok := p.(map[string]any)
			if !ok {
				return webhook.Reply{}, false
			}
			c, ok := m[f].(string)
			if !ok {
				return webhook.Reply{}, false
			}
			body, _ := json.Marshal(map[string]string{f: c})
			return webhook.Reply{ContentType: "application/json", Body: body}, true
		}
	}
	return nil
}

// slackHandshake answers Slack's url_verification request with its
// challenge, as plain text.
func slackHandshake(r *webhook.Request) (webhook.Reply, bool) {
	if webhook.KindOf(r.MediaType) != webhook.KindJSON {
		return webhook.Reply{}, false
	}
	p, err := r.Payload()
	if err != nil {
		return webhook.Reply{}, false
	}
	m, ok := p.(map[string]any)
	if !ok || m["type"] != "url_verification" {
		return webhook.Reply{}, false
	}
	c, ok := m["challenge"].(string)
	if !ok {
		return webhook.Reply{}, false
	}
	return webhook.Reply{ContentType: "text/plain; charset=utf-8", Body: []byte(c)}, true
}

// MaxInFlight is the max_in_flight of a webhook connector whose entry sets
// none, in place of the runtime's 10,000: deliveries past it wait in the
// inbox, durable, rather than in memory between the inbox and the stream.
const MaxInFlight = 2048

// DefaultMaxInFlight returns MaxInFlight (config.InFlightDefaulter).
func (*Source) DefaultMaxInFlight() int { return MaxInFlight }
