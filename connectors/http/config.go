package http

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
)

// Body modes: what a request carries.
const (
	// BodyCloudEvent sends the event in CloudEvents structured mode: the
	// whole event as JSON, Content-Type application/cloudevents+json.
	BodyCloudEvent = "cloudevent"
	// BodyBinary sends the event in CloudEvents binary mode: attributes
	// in ce-* headers, the event's data as the body.
	BodyBinary = "binary"
	// BodyMapped sends the sink's mapped value (core.Delivery.Data) as
	// JSON: the body a legacy API takes.
	BodyMapped = "mapped"
)

// Config is the http sink's configuration. Each field declares its key (see
// core.FieldsOf); the README's Configuration section says more.
type Config struct {
	URL     string            `yaml:"url" required:"true" example:"https://wms.example.com/api/orders/{{ event.subject }}" doc:"Endpoint URL; each {{ expression }} part is an expression over the event (event.subject, event.data.order_id, sink), its text escaped for where it stands."`
	Method  string            `yaml:"method" default:"POST" enum:"POST,PUT,PATCH,DELETE" doc:"Request method."`
	Headers map[string]string `yaml:"headers" example:"{X-Order: \"{{ event.data.order_id }}\"}" doc:"Request headers; values may hold {{ expression }} parts like url. Credentials belong in auth."`
	Body    string            `yaml:"body" default:"cloudevent" enum:"cloudevent,binary,mapped" doc:"cloudevent sends the event as CloudEvents JSON (structured mode), binary its data with ce-* headers, mapped the sink's map as JSON."`
	// SigningSecrets sign each request the Standard Webhooks way.
	SigningSecrets []string      `yaml:"signing_secrets" secret:"true" example:"[\"${file:/run/secrets/wms_whsec}\"]" doc:"Standard Webhooks secrets (whsec_ then base64); each signs every request, so a receiver can move from one to the next. Empty sends no signature."`
	Auth           AuthConfig    `yaml:"auth" doc:"Credentials sent with every request."`
	Timeout        time.Duration `yaml:"timeout" default:"30s" doc:"Longest one request may take, answer included."`
	TLS            *TLSConfig    `yaml:"tls" doc:"TLS settings of https URLs; absent uses the system's roots."`
	RateLimit      float64       `yaml:"rate_limit" default:"0" doc:"Most requests per second to the endpoint; 0 is unlimited."`
	RateBurst      int           `yaml:"rate_burst" default:"1" doc:"Requests allowed at once above rate_limit."`
	MaxConcurrency int           `yaml:"max_concurrency" default:"16" doc:"Most requests in flight to the endpoint at once, across all of the sink's writes."`
	RetryStatuses  []string      `yaml:"retry_statuses" example:"[\"404\", \"409\"]" doc:"Statuses from 300 to 499 to retry on the sink's schedule instead of dead-lettering the event."`

	// retry is RetryStatuses parsed by Validate.
	retry []int
}

// AuthConfig holds the credentials sent with every request: a bearer token
// or a user and password, one of them.
type AuthConfig struct {
	Bearer string       `yaml:"bearer" secret:"true" example:"${file:/run/secrets/wms_token}" doc:"Token sent as Authorization: Bearer <token>."`
	Basic  *BasicConfig `yaml:"basic" doc:"HTTP basic credentials."`
}

// BasicConfig is a user name and password for HTTP basic authentication.
type BasicConfig struct {
	Username string `yaml:"username" required:"true" doc:"User name."`
	Password string `yaml:"password" secret:"true" doc:"Password."`
}

// TLSConfig holds the TLS settings of https URLs.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file" example:"/etc/tributary/wms-ca.pem" doc:"PEM file of the CA certificates the endpoint's certificate must chain to, instead of the system's."`
	CertFile           string `yaml:"cert_file" example:"/etc/tributary/client.pem" doc:"PEM client certificate, for endpoints that ask for one (mutual TLS)."`
	KeyFile            string `yaml:"key_file" secret:"true" example:"/run/secrets/client-key.pem" doc:"PEM private key of cert_file."`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" default:"false" doc:"Accept any certificate the endpoint shows; for tests only, as anyone on the path can then read and change the requests."`
}

// The headers the sink writes itself.
const (
	headerWebhookID        = "Webhook-Id"
	headerWebhookTimestamp = "Webhook-Timestamp"
	headerWebhookSignature = "Webhook-Signature"
)

// Validate reports every problem at once. It never quotes a secret.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, core.FieldErrorf(path, format, args...))
	}
	c.validateURL(add)
	c.validateHeaders(add)
	c.validateSecrets(add)
	c.validateLimits(add)
	c.retry = c.retry[:0]
	for i, s := range c.RetryStatuses {
		code, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || code < 300 || code > 499 {
			add(fmt.Sprintf("retry_statuses[%d]", i), "%q is not a status from 300 to 499 (408, 429 and every 5xx are retried already)", s)
			continue
		}
		c.retry = append(c.retry, code)
	}
	return errors.Join(errs...)
}

// problems records a problem of the key at path.
type problems func(path, format string, args ...any)

// validateURL checks that the URL's literal start names an http or https
// endpoint and that its {{ }} parts are closed; the expressions themselves
// are compiled by Configure.
func (c *Config) validateURL(add problems) {
	if _, err := splitTemplate(c.URL); err != nil {
		add("url", "%v", err)
		return
	}
	head, _, hasExpr := strings.Cut(c.URL, "{{")
	u, err := url.Parse(head)
	if err != nil {
		// The parse error quotes the URL, which may hold a password.
		add("url", "is not a URL: check its syntax")
		return
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		add("url", "%q does not start with http:// or https://", endpoint(u))
		return
	}
	if u.Host == "" && !hasExpr {
		add("url", "%q names no host", endpoint(u))
	}
	if u.User != nil {
		add("url", "holds credentials: give them in auth.basic, where they are kept secret")
	}
}

// validateHeaders checks the header names, their templates, and that none
// of them is one the sink writes itself.
func (c *Config) validateHeaders(add problems) {
	for name, v := range c.Headers {
		path := "headers." + name
		if !validHeaderName(name) {
			add(path, "%q is not a valid header name", name)
			continue
		}
		if _, err := splitTemplate(v); err != nil {
			add(path, "%v", err)
		}
		switch canon := textproto.CanonicalMIMEHeaderKey(name); {
		case canon == "Authorization" && (c.Auth.Bearer != "" || c.Auth.Basic != nil):
			add(path, "is set by auth too: keep one of them")
		case len(c.SigningSecrets) > 0 && (canon == headerWebhookID || canon == headerWebhookTimestamp || canon == headerWebhookSignature):
			add(path, "is written by the sink when signing_secrets are set: remove it")
		case c.Body == BodyBinary && strings.HasPrefix(canon, "Ce-"):
			add(path, "is a CloudEvents attribute header, written by the sink in binary mode: remove it")
		}
	}
}

// validHeaderName reports whether name is an HTTP token (RFC 9110).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r >= 0x7f || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// validateSecrets checks the signing secrets and the auth block.
func (c *Config) validateSecrets(add problems) {
	for i, s := range c.SigningSecrets {
		if _, err := signingKey(s); err != nil {
			add(fmt.Sprintf("signing_secrets[%d]", i), "%v", err)
		}
	}
	if c.Auth.Bearer != "" && c.Auth.Basic != nil {
		add("auth", "has both bearer and basic: keep one")
	}
	if b := c.Auth.Basic; b != nil && b.Username == "" {
		add("auth.basic.username", "is required for basic")
	}
	if c.TLS != nil && (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		add("tls", "cert_file and key_file go together: set both or neither")
	}
}

// validateLimits checks the method, body, timeout, rate and concurrency.
func (c *Config) validateLimits(add problems) {
	methods := []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	if !slices.Contains(methods, c.Method) {
		add("method", "%q is not one of %s", c.Method, strings.Join(methods, ", "))
	}
	switch c.Body {
	case BodyCloudEvent, BodyBinary, BodyMapped:
	default:
		add("body", "%q is not one of cloudevent, binary, mapped", c.Body)
	}
	if c.Timeout < time.Millisecond {
		add("timeout", "%s is too short", c.Timeout)
	}
	if c.RateLimit < 0 {
		add("rate_limit", "%g is negative", c.RateLimit)
	}
	if c.RateLimit > 0 && c.RateBurst < 1 {
		add("rate_burst", "%d must be at least 1 when rate_limit is set, or no request could be sent", c.RateBurst)
	}
	if c.MaxConcurrency < 1 {
		add("max_concurrency", "%d must be at least 1", c.MaxConcurrency)
	}
}

// signingKey decodes a Standard Webhooks secret: whsec_ followed by the
// base64 of the key (the reference libraries accept the base64 alone too).
// Its errors never quote the secret.
func signingKey(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return nil, errors.New("is not a Standard Webhooks secret: whsec_ followed by base64 (is its variable or file set?)")
	}
	if len(key) == 0 {
		return nil, errors.New("is empty (is its variable or file set?)")
	}
	return key, nil
}

// endpoint shows u for messages: scheme, host and path, without
// credentials, query or fragment, which may carry secrets.
func endpoint(u *url.URL) string {
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return v.String()
}
