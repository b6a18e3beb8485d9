package webhook

import (
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/tributary/tributary/adapters/webhook"
	"github.com/tributary/tributary/core"
)

// The verification presets of verify.preset.
const (
	PresetNone             = "none"
	PresetHMAC             = "hmac"
	PresetGitHub           = "github"
	PresetStripe           = "stripe"
	PresetShopify          = "shopify"
	PresetSlack            = "slack"
	PresetStandardWebhooks = "standard_webhooks"
	PresetBasic            = "basic"
	PresetBearer           = "bearer"
)

// Presets lists every verification preset.
func Presets() []string {
	return []string{PresetNone, PresetHMAC, PresetGitHub, PresetStripe, PresetShopify, PresetSlack, PresetStandardWebhooks, PresetBasic, PresetBearer}
}

// The handshake types of handshake.type.
const (
	HandshakeAuto  = "auto"  // slack when verify.preset is slack, otherwise none
	HandshakeNone  = "none"  // no handshake
	HandshakeSlack = "slack" // answer Slack's url_verification challenge
	HandshakeEcho  = "echo"  // echo a challenge from a query parameter or a JSON field
)

// DefaultTolerance is how far a signed timestamp may be from the local
// clock in the timestamped presets (stripe, slack, standard_webhooks).
const DefaultTolerance = 5 * time.Minute

// Config is the webhook connector's configuration.
type Config struct {
	// Path is the URL path on the sidecar's listener, such as /hooks/orders.
	Path string `yaml:"path"`
	// Methods lists the accepted request methods.
	Methods []string `yaml:"methods"`
	// MaxBodyBytes bounds a request body (413 beyond).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ContentTypes lists the accepted media types (415 otherwise).
	ContentTypes []string `yaml:"content_types"`
	// Verify says how deliveries are authenticated.
	Verify VerifyConfig `yaml:"verify"`
	// Dedup says where the delivery id comes from and how long it is kept.
	Dedup DedupConfig `yaml:"dedup"`
	// MaxPending bounds the deliveries stored and not yet on the stream.
	MaxPending int `yaml:"max_pending"`
	// MaxPendingBytes bounds their bodies' total size.
	MaxPendingBytes int64 `yaml:"max_pending_bytes"`
	// RetryAfter is the Retry-After of a 503.
	RetryAfter time.Duration `yaml:"retry_after"`
	// Handshake configures challenge answers.
	Handshake HandshakeConfig `yaml:"handshake"`
	// Ack says what a 2xx waits for: inbox or stream.
	Ack string `yaml:"ack"`
	// AckTimeout bounds the wait of ack: stream.
	AckTimeout time.Duration `yaml:"ack_timeout"`
}

// VerifyConfig selects and parameterises a verification preset.
type VerifyConfig struct {
	Preset    string        `yaml:"preset"`
	Secrets   []string      `yaml:"secrets"`
	Algorithm string        `yaml:"algorithm"`
	Encoding  string        `yaml:"encoding"`
	Header    string        `yaml:"header"`
	Prefix    string        `yaml:"prefix"`
	Tolerance time.Duration `yaml:"tolerance"`
	Username  string        `yaml:"username"`
}

// DedupConfig says where a delivery's id comes from.
type DedupConfig struct {
	// Header names the request header holding the id.
	Header string `yaml:"header"`
	// Field is a dotted path to the id in a JSON or form body, such as
	// "id" or "event.id".
	Field string `yaml:"field"`
	// Window is how long an id is remembered.
	Window time.Duration `yaml:"window"`
}

// HandshakeConfig configures the answers to handshake requests.
type HandshakeConfig struct {
	Type       string `yaml:"type"`
	QueryParam string `yaml:"query_param"`
	JSONField  string `yaml:"json_field"`
}

// Fields declares the connector's configuration for the registry.
func Fields() []core.Field {
	return []core.Field{
		{Name: "path", Type: core.TypeString, Required: true, Example: "/hooks/orders",
			Doc: "URL path the connector receives deliveries at on the sidecar's HTTP listener; {name} wildcards become meta.path entries."},
		{Name: "methods", Type: core.TypeStrings, Default: []string{"POST"},
			Doc: "Accepted request methods; others get 405."},
		{Name: "max_body_bytes", Type: core.TypeInt, Default: webhook.DefaultMaxBodyBytes,
			Doc: "Largest accepted request body in bytes; larger ones get 413."},
		{Name: "content_types", Type: core.TypeStrings, Default: webhook.DefaultContentTypes(),
			Doc: "Accepted media types (+json and +xml types come with application/json and application/xml); others get 415."},
		{Name: "verify", Type: core.TypeObject, Doc: "How deliveries are authenticated; failures get 401 and are not stored.", Fields: []core.Field{
			{Name: "preset", Type: core.TypeString, Default: PresetNone, Enum: Presets(),
				Doc: "Verification scheme: a provider's signature, generic HMAC, HTTP basic, a bearer token, or none."},
			{Name: "secrets", Type: core.TypeStrings, Secret: true, Example: "[\"${file:/run/secrets/hook}\"]",
				Doc: "Signing secrets, tokens or passwords; any one of them verifies, so a rotated secret can stay listed while senders move."},
			{Name: "algorithm", Type: core.TypeString, Default: "sha256", Enum: []string{"sha1", "sha256", "sha512"},
				Doc: "HMAC hash of the hmac preset."},
			{Name: "encoding", Type: core.TypeString, Default: "hex", Enum: []string{"hex", "base64"},
				Doc: "Signature encoding of the hmac preset."},
			{Name: "header", Type: core.TypeString, Example: "X-Signature",
				Doc: "Header holding the signature, for the hmac preset."},
			{Name: "prefix", Type: core.TypeString, Example: "sha256=",
				Doc: "Text before the signature in its header, for the hmac preset."},
			{Name: "tolerance", Type: core.TypeDuration, Default: DefaultTolerance.String(),
				Doc: "Largest distance between a signed timestamp and the local clock (stripe, slack, standard_webhooks)."},
			{Name: "username", Type: core.TypeString,
				Doc: "User name of the basic preset; secrets are its accepted passwords."},
		}},
		{Name: "dedup", Type: core.TypeObject, Doc: "Where the delivery id comes from (default: the preset's, else the SHA-256 of the body) and how long it is remembered.", Fields: []core.Field{
			{Name: "header", Type: core.TypeString, Example: "X-Request-Id", Doc: "Header holding the delivery id."},
			{Name: "field", Type: core.TypeString, Example: "id", Doc: "Dotted path to the delivery id in the body."},
			{Name: "window", Type: core.TypeDuration, Default: webhook.DefaultDedupWindow.String(),
				Doc: "How long a delivery id is at least remembered (at most twice as long); a delivery with a remembered id is answered 200 and not emitted."},
		}},
		{Name: "max_pending", Type: core.TypeInt, Default: webhook.DefaultMaxPending,
			Doc: "Deliveries stored but not yet on the stream beyond which new ones get 503 with Retry-After."},
		{Name: "max_pending_bytes", Type: core.TypeInt, Default: webhook.DefaultMaxPendingBytes,
			Doc: "Total body bytes stored but not yet on the stream beyond which new deliveries get 503."},
		{Name: "retry_after", Type: core.TypeDuration, Default: webhook.DefaultRetryAfter.String(),
			Doc: "Delay a refused sender is asked to wait (Retry-After)."},
		{Name: "ack", Type: core.TypeString, Default: string(webhook.AckInbox), Enum: []string{string(webhook.AckInbox), string(webhook.AckStream)},
			Doc: "What a 2xx waits for: inbox (the delivery is durably stored and will be delivered) or stream (its events are durable on the stream)."},
		{Name: "ack_timeout", Type: core.TypeDuration, Default: webhook.DefaultAckTimeout.String(),
			Doc: "With ack: stream, how long a request waits for the stream before a 503 with Retry-After (the delivery stays stored)."},
		{Name: "handshake", Type: core.TypeObject, Doc: "Answers to the challenges some senders send before delivering; never emitted.", Fields: []core.Field{
			{Name: "type", Type: core.TypeString, Default: HandshakeAuto, Enum: []string{HandshakeAuto, HandshakeNone, HandshakeSlack, HandshakeEcho},
				Doc: "auto answers Slack's url_verification when verify.preset is slack; echo returns a challenge from query_param or json_field."},
			{Name: "query_param", Type: core.TypeString, Example: "challenge",
				Doc: "Query parameter whose value a GET challenge echoes (echo type)."},
			{Name: "json_field", Type: core.TypeString, Example: "challenge",
				Doc: "Top-level JSON body field whose value is echoed back (echo type)."},
		}},
	}
}

func (c *Config) applyDefaults() {
	if len(c.Methods) == 0 {
		c.Methods = []string{http.MethodPost}
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = webhook.DefaultMaxBodyBytes
	}
	if len(c.ContentTypes) == 0 {
		c.ContentTypes = webhook.DefaultContentTypes()
	}
	if c.Verify.Preset == "" {
		c.Verify.Preset = PresetNone
	}
	if c.Verify.Algorithm == "" {
		c.Verify.Algorithm = "sha256"
	}
	if c.Verify.Encoding == "" {
		c.Verify.Encoding = "hex"
	}
	if c.Verify.Tolerance == 0 {
		c.Verify.Tolerance = DefaultTolerance
	}
	if c.Dedup.Window == 0 {
		c.Dedup.Window = webhook.DefaultDedupWindow
	}
	if c.MaxPending == 0 {
		c.MaxPending = webhook.DefaultMaxPending
	}
	if c.MaxPendingBytes == 0 {
		c.MaxPendingBytes = webhook.DefaultMaxPendingBytes
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = webhook.DefaultRetryAfter
	}
	if c.Handshake.Type == "" {
		c.Handshake.Type = HandshakeAuto
	}
	if c.Ack == "" {
		c.Ack = string(webhook.AckInbox)
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = webhook.DefaultAckTimeout
	}
}

// Validate reports every problem of c at once, as joined *core.FieldError
// values. It never quotes a secret.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, core.FieldErrorf(path, format, args...))
	}
	switch {
	case c.Path == "":
		add("path", "is required: the URL path deliveries arrive at, such as /hooks/orders")
	case !strings.HasPrefix(c.Path, "/"):
		add("path", "%q must start with /, such as /hooks/orders", c.Path)
	default:
		if err := checkPattern(c.Path); err != nil {
			add("path", "%q is not a valid path pattern: %v", c.Path, err)
		}
	}
	for i, m := range c.Methods {
		switch m {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodGet, http.MethodDelete:
		default:
			add(fmt.Sprintf("methods[%d]", i), "%q is not one of POST, PUT, PATCH, GET, DELETE (upper case)", m)
		}
	}
	if c.MaxBodyBytes <= 0 || c.MaxBodyBytes > 64<<20 {
		add("max_body_bytes", "%d is out of range: use 1 to 67108864 (64 MiB)", c.MaxBodyBytes)
	}
	for i, t := range c.ContentTypes {
		if mt, _, err := mime.ParseMediaType(t); err != nil || mt != strings.ToLower(t) || !strings.Contains(mt, "/") {
			add(fmt.Sprintf("content_types[%d]", i), "%q is not a media type such as application/json", t)
		}
	}
	errs = append(errs, c.Verify.validate())
	if c.Dedup.Header != "" && c.Dedup.Field != "" {
		add("dedup", "set header or field, not both")
	}
	if c.Dedup.Window < time.Second {
		add("dedup.window", "%s is too short: use at least 1s, such as 24h", c.Dedup.Window)
	}
	if c.MaxPending < 1 {
		add("max_pending", "%d must be at least 1", c.MaxPending)
	}
	if c.MaxPendingBytes < 1 {
		add("max_pending_bytes", "%d must be at least 1", c.MaxPendingBytes)
	}
	if c.RetryAfter < time.Second {
		add("retry_after", "%s is too short: use at least 1s", c.RetryAfter)
	}
	switch webhook.AckMode(c.Ack) {
	case webhook.AckInbox, webhook.AckStream:
	default:
		add("ack", "%q is not one of inbox, stream", c.Ack)
	}
	if c.AckTimeout < 10*time.Millisecond {
		add("ack_timeout", "%s is too short: use at least 10ms, such as 10s", c.AckTimeout)
	}
	switch c.Handshake.Type {
	case HandshakeAuto, HandshakeNone, HandshakeSlack:
	case HandshakeEcho:
		if c.Handshake.QueryParam == "" && c.Handshake.JSONField == "" {
			add("handshake", "type echo needs query_param or json_field, such as query_param: challenge")
		}
	default:
		add("handshake.type", "%q is not one of auto, none, slack, echo", c.Handshake.Type)
	}
	return errors.Join(errs...)
}

func (v *VerifyConfig) validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, core.PrefixFieldErrors("verify", core.FieldErrorf(path, format, args...)))
	}
	known := false
	for _, p := range Presets() {
		known = known || p == v.Preset
	}
	if !known {
		add("preset", "%q is not one of %s", v.Preset, strings.Join(Presets(), ", "))
		return errors.Join(errs...)
	}
	if v.Preset != PresetNone && len(v.Secrets) == 0 {
		add("secrets", "preset %s needs at least one secret, such as secrets: [\"${WEBHOOK_SECRET}\"]", v.Preset)
	}
	for i, s := range v.Secrets {
		if s == "" {
			add(fmt.Sprintf("secrets[%d]", i), "is empty (is its variable or file set?)")
		}
		if v.Preset == PresetStandardWebhooks && s != "" {
			if _, err := standardSecret(s); err != nil {
				add(fmt.Sprintf("secrets[%d]", i), "is not a Standard Webhooks secret (whsec_ followed by base64)")
			}
		}
	}
	switch v.Algorithm {
	case "sha1", "sha256", "sha512":
	default:
		add("algorithm", "%q is not one of sha1, sha256, sha512", v.Algorithm)
	}
	switch v.Encoding {
	case "hex", "base64":
	default:
		add("encoding", "%q is not one of hex, base64", v.Encoding)
	}
	if v.Preset == PresetHMAC && v.Header == "" {
		add("header", "preset hmac needs the header holding the signature, such as X-Signature")
	}
	if v.Preset == PresetBasic && v.Username == "" {
		add("username", "preset basic needs a username")
	}
	if v.Tolerance < time.Second {
		add("tolerance", "%s is too short: use at least 1s, such as 5m", v.Tolerance)
	}
	return errors.Join(errs...)
}

// standardSecret decodes a Standard Webhooks secret: whsec_ followed by
// base64.
func standardSecret(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
}

// checkPattern reports whether path is a valid net/http ServeMux pattern
// without a method or host.
func checkPattern(path string) (err error) {
	if strings.ContainsAny(path, " \t") {
		return errors.New("it contains a space")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	http.NewServeMux().Handle(path, http.NotFoundHandler())
	return nil
}
