// Package http registers the "http" sink: outbound webhooks. Each event
// read from the stream becomes one HTTP request to an endpoint, as a
// CloudEvent (structured or binary mode) or as the JSON body a legacy API
// takes (the sink's map), signed the Standard Webhooks way, with the
// endpoint's answer deciding whether the event is delivered, retried later
// or dead-lettered. See README.md.
package http

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/textproto"
	"os"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
)

// Type is the sink type ID.
const Type = "http"

func init() {
	core.RegisterSink(Spec())
}

// Spec returns the sink's registration, for registries built by tests.
func Spec() core.SinkSpec {
	return core.SinkSpec{
		Type:    Type,
		Summary: "Delivers events as HTTP requests (outbound webhooks): CloudEvents or a mapped JSON body, Standard Webhooks signatures, per-endpoint rate limit and concurrency.",
		Config:  Config{},
		New:     func() core.Sink { return New() },
	}
}

// Sink is the http sink. Configure it once, then Open, Write (concurrently)
// and Close it, as core.Sink says.
type Sink struct {
	now  func() time.Time
	name string
	cfg  Config

	url     *template
	headers []header
	// auth is the Authorization value auth gives, or "".
	auth string
	// keys are the decoded signing secrets.
	keys [][]byte
	// dynamic says a template holds an expression, so that deliveries
	// need an expression environment.
	dynamic bool
	envs    sync.Pool
	redact  *redactor

	limiter *rate.Limiter
	// slots bounds the requests in flight across all writes.
	slots chan struct{}

	mu   sync.Mutex
	conn *conn
}

// header is a configured header, its name in canonical form.
type header struct {
	name      string
	value     *template
	sensitive bool
}

// New returns an unconfigured sink.
func New() *Sink { return NewWithClock(time.Now) }

// NewWithClock returns an unconfigured sink that reads the time of its
// signatures (webhook-timestamp) from now.
func NewWithClock(now func() time.Time) *Sink { return &Sink{now: now} }

// Configure decodes and validates the configuration and compiles the
// expressions of url and headers. It does no I/O.
func (s *Sink) Configure(c core.Config) error {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	var errs []error
	u, err := compileURL(cfg.URL)
	if err != nil {
		errs = append(errs, err)
	}
	var headers []header
	for name, v := range cfg.Headers {
		t, err := compileHeader(name, v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		headers = append(headers, header{name: textproto.CanonicalMIMEHeaderKey(name), value: t, sensitive: sensitiveHeader(name)})
		s.dynamic = s.dynamic || t.dynamic()
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	s.name, s.cfg, s.url, s.headers = c.Name, cfg, u, headers
	s.dynamic = s.dynamic || u.dynamic()
	s.envs.New = func() any { return rules.NewEventEnv(nil, "") }
	for _, secret := range cfg.SigningSecrets {
		key, _ := signingKey(secret) // checked by Validate
		s.keys = append(s.keys, key)
	}
	switch a := cfg.Auth; {
	case a.Bearer != "":
		s.auth = "Bearer " + a.Bearer
	case a.Basic != nil:
		s.auth = "Basic " + basicCredentials(a.Basic)
	}
	s.redact = newRedactor(&cfg)
	if cfg.RateLimit > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), cfg.RateBurst)
	}
	s.slots = make(chan struct{}, cfg.MaxConcurrency)
	return nil
}

// Open reads the TLS files and readies the HTTP client. Nothing is sent
// until Write. An Open after Close starts afresh.
func (s *Sink) Open(_ context.Context, _ core.Env) error {
	tlsConfig, err := s.tlsConfig()
	if err != nil {
		return err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	transport.MaxIdleConnsPerHost = s.cfg.MaxConcurrency
	client := &http.Client{
		Transport: transport,
		Timeout:   s.cfg.Timeout,
		// A redirect is an answer, not followed: net/http would turn a
		// POST into a GET without its body on a 301, 302 or 303.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.mu.Lock()
	old := s.conn
	s.conn = newConn(client)
	s.mu.Unlock()
	if old != nil {
		old.shut()
	}
	return nil
}

// tlsConfig builds the TLS settings of tls:, reading its files.
func (s *Sink) tlsConfig() (*tls.Config, error) {
	t := s.cfg.TLS
	if t == nil {
		return nil, nil
	}
	out := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // the user's explicit, documented choice
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("http sink %q: tls.ca_file: %w", s.name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, core.Fatal(fmt.Errorf("http sink %q: tls.ca_file %s holds no PEM certificate", s.name, t.CAFile))
		}
		out.RootCAs = pool
	}
	if t.CertFile != "" {
		certPEM, err := os.ReadFile(t.CertFile)
		if err != nil {
			return nil, fmt.Errorf("http sink %q: tls.cert_file: %w", s.name, err)
		}
		keyPEM, err := os.ReadFile(t.KeyFile)
		if err != nil {
			// key_file is secret: its error names the failure, not the
			// file.
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("http sink %q: tls.key_file cannot be read: %w", s.name, err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, core.Fatal(fmt.Errorf("http sink %q: tls.cert_file and tls.key_file are not a certificate and its key: %w", s.name, err))
		}
		out.Certificates = []tls.Certificate{cert}
	}
	return out, nil
}

// Close stops delivering: Writes that start afterwards deliver nothing. It
// waits, within ctx, for the Writes in flight to return; the connections
// are dropped once the last of them has. It is safe to call twice and
// after a failed Open.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	c := s.conn
	s.conn = nil
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	c.shut()
	select {
	case <-c.idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("http sink %q: close: writes still in flight: %w", s.name, ctx.Err())
	}
}

// conn is the client of one Open, and the Writes that use it.
type conn struct {
	client *http.Client
	mu     sync.Mutex
	active int
	shutd  bool
	// idle is closed once the conn is shut and no Write uses it; its
	// connections are then dropped.
	idle chan struct{}
}

func newConn(client *http.Client) *conn {
	return &conn{client: client, idle: make(chan struct{})}
}

// use returns the open conn, counted as in use until done is called, or
// nil when the sink is not open.
func (s *Sink) use() *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conn
	if c == nil {
		return nil
	}
	c.mu.Lock()
	c.active++
	c.mu.Unlock()
	return c
}

// done ends a use of c.
func (c *conn) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active--
	if c.shutd && c.active == 0 {
		c.release()
	}
}

// shut marks c closed; idle closes once its last use ends.
func (c *conn) shut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shutd {
		return
	}
	c.shutd = true
	if c.active == 0 {
		c.release()
	}
}

// release drops c's connections and says it is idle. c.mu is held.
func (c *conn) release() {
	c.client.CloseIdleConnections()
	close(c.idle)
}

var _ core.Sink = (*Sink)(nil)
