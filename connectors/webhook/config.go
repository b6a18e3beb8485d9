package webhook

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/core"
)

// The handshake types of handshake.type.
const (
	HandshakeAuto  = "auto"  // slack when verify.preset is slack, otherwise none
	HandshakeNone  = "none"  // no handshake
	HandshakeSlack = "slack" // answer Slack's url_verification challenge
	HandshakeEcho  = "echo"  // echo a challenge from a query parameter or a JSON field
)

// Config is the webhook connector's configuration. Each key is declared
// once, by its field's tags; its defaults come from them (see core.FieldsOf).
type Config struct {
	Path            string          `yaml:"path" required:"true" example:"/hooks/orders" doc:"URL path the connector receives deliveries at on the sidecar's HTTP listener; {name} wildcards become meta.path entries."`
	Methods         []string        `yaml:"methods" default:"[POST]" doc:"Accepted request methods; others get 405."`
	MaxBodyBytes    int64           `yaml:"max_body_bytes" default:"1048576" doc:"Largest accepted request body in bytes; larger ones get 413."`
	ContentTypes    []string        `yaml:"content_types" default:"[application/json, application/x-www-form-urlencoded, application/xml, text/xml]" doc:"Accepted media types (+json and +xml types come with application/json and application/xml); others get 415."`
	Verify          VerifyConfig    `yaml:"verify" doc:"How deliveries are authenticated; failures get 401 and are not stored."`
	Dedup           DedupConfig     `yaml:"dedup" doc:"Where the delivery id comes from (default: the preset's, else the SHA-256 of the body) and how long it is remembered."`
	MaxPending      int             `yaml:"max_pending" default:"10000" doc:"Deliveries accepted but not yet on the stream (stored in the inbox, or held in memory with ack: stream) beyond which new ones get 503 with Retry-After."`
	MaxPendingBytes int64           `yaml:"max_pending_bytes" default:"67108864" doc:"Total body bytes accepted but not yet on the stream beyond which new deliveries get 503."`
	RetryAfter      time.Duration   `yaml:"retry_after" default:"5s" doc:"Delay a refused sender is asked to wait (Retry-After)."`
	Ack             string          `yaml:"ack" default:"inbox" enum:"inbox,stream" doc:"What a 2xx waits for: stream (its events are durable on the stream; the delivery is written nowhere else) or inbox (it is durably stored in the connector's inbox and will be delivered, also while the stream is away)."`
	AckTimeout      time.Duration   `yaml:"ack_timeout" default:"10s" doc:"With ack: stream, how long a request waits for the stream before a 503 with Retry-After (the delivery is dropped unless already read; the sender sends it again)."`
	Handshake       HandshakeConfig `yaml:"handshake" doc:"Answers to the challenges some senders send before delivering; never emitted."`
}

// VerifyConfig selects a verification preset and holds its settings; which
// preset reads which key is said by the key's doc and by the preset's
// entry in presets.go.
type VerifyConfig struct {
	Preset    string        `yaml:"preset" default:"none" enum:"none,hmac,github,stripe,shopify,slack,standard_webhooks,basic,bearer" doc:"Verification scheme: a provider's signature, generic HMAC, HTTP basic, a bearer token, or none."`
	Secrets   []string      `yaml:"secrets" secret:"true" example:"[\"${file:/run/secrets/hook}\"]" doc:"Signing secrets, tokens or passwords; any one of them verifies, so a rotated secret can stay listed while senders move."`
	Algorithm string        `yaml:"algorithm" default:"sha256" enum:"sha1,sha256,sha512" doc:"HMAC hash of the hmac preset."`
	Encoding  string        `yaml:"encoding" default:"hex" enum:"hex,base64" doc:"Signature encoding of the hmac preset."`
	Header    string        `yaml:"header" example:"X-Signature" doc:"Header holding the signature, for the hmac preset."`
	Prefix    string        `yaml:"prefix" example:"sha256=" doc:"Text before the signature in its header, for the hmac preset."`
	Tolerance time.Duration `yaml:"tolerance" default:"5m0s" doc:"Largest distance between a signed timestamp and the local clock (stripe, slack, standard_webhooks)."`
	Username  string        `yaml:"username" doc:"User name of the basic preset; secrets are its accepted passwords."`
}

// DedupConfig says where a delivery's id comes from and how long it is
// remembered.
type DedupConfig struct {
	Header    string        `yaml:"header" example:"X-Request-Id" doc:"Header holding the delivery id."`
	Field     string        `yaml:"field" example:"id" doc:"Dotted path to the delivery id in the body."`
	Window    time.Duration `yaml:"window" default:"24h0m0s" doc:"How long a delivery id is at least remembered (at most about 1.2 times as long); a delivery with a remembered id is answered 200 and not emitted."`
	MemoryIDs int           `yaml:"memory_ids" default:"32768" doc:"Newest delivery ids held in memory (about 35 bytes each, twice while they are sealed); older ones are sealed into sorted files in the inbox and cost about 1.4 bytes each of memory."`
}

// HandshakeConfig configures the answers to handshake requests.
type HandshakeConfig struct {
	Type       string `yaml:"type" default:"auto" enum:"auto,none,slack,echo" doc:"auto answers Slack's url_verification when verify.preset is slack; echo returns a challenge from query_param or json_field."`
	QueryParam string `yaml:"query_param" example:"challenge" doc:"Query parameter whose value a GET challenge echoes (echo type)."`
	JSONField  string `yaml:"json_field" example:"challenge" doc:"Top-level JSON body field whose value is echoed back (echo type)."`
}

// decode decodes c into a Config with every absent key, and every key of a
// block left out, at its declared default.
func decode(c core.Config) (Config, error) {
	var cfg Config
	err := c.Decode(&cfg)
	return cfg, err
}

// declaredDefaults is the configuration of a document that sets nothing.
var declaredDefaults = sync.OnceValue(func() Config {
	cfg, err := decode(core.NewConfig(Type, nil))
	if err != nil {
		panic(fmt.Sprintf("webhook: declared defaults do not decode: %v", err))
	}
	return cfg
})

// enum returns the values T's tags allow for key.
func enum[T any](key string) []string {
	for _, f := range core.FieldsOf[T]() {
		if f.Name == key {
			return f.Enum
		}
	}
	panic("webhook: " + key + " is not a declared key")
}

// allows reports whether T's tags allow value for key, and lists the
// values they allow.
func allows[T any](key, value string) (bool, string) {
	e := enum[T](key)
	return slices.Contains(e, value), strings.Join(e, ", ")
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
	if c.Dedup.MemoryIDs < 1024 {
		add("dedup.memory_ids", "%d is too small: use at least 1024, such as 32768", c.Dedup.MemoryIDs)
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
	if ok, allowed := allows[Config]("ack", c.Ack); !ok {
		add("ack", "%q is not one of %s", c.Ack, allowed)
	}
	if c.AckTimeout < 10*time.Millisecond {
		add("ack_timeout", "%s is too short: use at least 10ms, such as 10s", c.AckTimeout)
	}
	if ok, allowed := allows[HandshakeConfig]("type", c.Handshake.Type); !ok {
		add("handshake.type", "%q is not one of %s", c.Handshake.Type, allowed)
	}
	if c.Handshake.Type == HandshakeEcho && c.Handshake.QueryParam == "" && c.Handshake.JSONField == "" {
		add("handshake", "type echo needs query_param or json_field, such as query_param: challenge")
	}
	return errors.Join(errs...)
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
