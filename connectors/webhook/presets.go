package webhook

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// Presets lists every verification preset, in the order verify.preset's
// enum tag declares them.
func Presets() []string { return slices.Clone(enum[VerifyConfig]("preset")) }

// preset is one verification scheme: how its verifier is built, what it
// needs of the configuration and where its sender puts a delivery's id.
// The keys it reads are VerifyConfig's, declared once there; a provider's
// fixed settings are written as those same keys (see hmacWith). A preset
// is its name in VerifyConfig's enum tag and its entry in presets.
type preset struct {
	// verifier builds the verifier from a valid configuration with every
	// key set (nil for none).
	verifier func(v VerifyConfig, now func() time.Time) (webhook.Verifier, error)
	// check reports what the preset needs of the configuration beyond a
	// secret, through add (paths relative to verify).
	check func(v VerifyConfig, add func(path, format string, args ...any))
	// idHeader or idField is where the sender puts a delivery's id: a
	// header, or a dotted path into the body.
	idHeader, idField string
}

// presets holds every preset of VerifyConfig's enum.
var presets = map[string]preset{
	PresetNone: {},
	// hmac reads algorithm, encoding, header and prefix.
	PresetHMAC: {verifier: newHMACVerifier, check: func(v VerifyConfig, add func(string, string, ...any)) {
		if v.Header == "" {
			add("header", "preset hmac needs the header holding the signature, such as X-Signature")
		}
	}},
	PresetGitHub: {
		verifier: hmacWith(VerifyConfig{Algorithm: "sha256", Encoding: "hex", Header: "X-Hub-Signature-256", Prefix: "sha256="}),
		idHeader: "X-GitHub-Delivery",
	},
	PresetShopify: {
		verifier: hmacWith(VerifyConfig{Algorithm: "sha256", Encoding: "base64", Header: "X-Shopify-Hmac-Sha256"}),
		idHeader: "X-Shopify-Webhook-Id",
	},
	// stripe, slack and standard_webhooks read tolerance.
	PresetStripe: {verifier: func(v VerifyConfig, now func() time.Time) (webhook.Verifier, error) {
		return &stripeVerifier{macs: macPools(sha256.New, secretKeys(v.Secrets)), tolerance: v.Tolerance, now: now}, nil
	}, idField: "id"},
	PresetSlack: {verifier: func(v VerifyConfig, now func() time.Time) (webhook.Verifier, error) {
		return &slackVerifier{macs: macPools(sha256.New, secretKeys(v.Secrets)), tolerance: v.Tolerance, now: now}, nil
	}, idField: "event_id"},
	PresetStandardWebhooks: {verifier: newStandardVerifier, check: func(v VerifyConfig, add func(string, string, ...any)) {
		for i, s := range v.Secrets {
			if _, err := standardSecret(s); s != "" && err != nil {
				add(fmt.Sprintf("secrets[%d]", i), "is not a Standard Webhooks secret (whsec_ followed by base64)")
			}
		}
	}, idHeader: "Webhook-Id"},
	// basic reads username; its secrets are the accepted passwords.
	PresetBasic: {verifier: func(v VerifyConfig, _ func() time.Time) (webhook.Verifier, error) {
		return newCredentialVerifier(v.Username, v.Secrets, true), nil
	}, check: func(v VerifyConfig, add func(string, string, ...any)) {
		if v.Username == "" {
			add("username", "preset basic needs a username")
		}
	}},
	PresetBearer: {verifier: func(v VerifyConfig, _ func() time.Time) (webhook.Verifier, error) {
		return newCredentialVerifier("", v.Secrets, false), nil
	}},
}

// validate reports every problem of v at once, with paths under verify.
func (v *VerifyConfig) validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, core.PrefixFieldErrors("verify", core.FieldErrorf(path, format, args...)))
	}
	p, known := presets[v.Preset]
	if ok, allowed := allows[VerifyConfig]("preset", v.Preset); !ok || !known {
		add("preset", "%q is not one of %s", v.Preset, allowed)
		return errors.Join(errs...)
	}
	if v.Preset != PresetNone && len(v.Secrets) == 0 {
		add("secrets", "preset %s needs at least one secret, such as secrets: [\"${WEBHOOK_SECRET}\"]", v.Preset)
	}
	for i, s := range v.Secrets {
		if s == "" {
			add(fmt.Sprintf("secrets[%d]", i), "is empty (is its variable or file set?)")
		}
	}
	if ok, allowed := allows[VerifyConfig]("algorithm", v.Algorithm); !ok {
		add("algorithm", "%q is not one of %s", v.Algorithm, allowed)
	}
	if ok, allowed := allows[VerifyConfig]("encoding", v.Encoding); !ok {
		add("encoding", "%q is not one of %s", v.Encoding, allowed)
	}
	if p.check != nil {
		p.check(*v, add)
	}
	if v.Tolerance < time.Second {
		add("tolerance", "%s is too short: use at least 1s, such as 5m", v.Tolerance)
	}
	return errors.Join(errs...)
}

// NewVerifier returns the verifier of a preset. now is the clock the
// timestamped presets compare against; nil means time.Now. v must be
// valid; its zero algorithm, encoding and tolerance take their declared
// defaults.
func NewVerifier(v VerifyConfig, now func() time.Time) (webhook.Verifier, error) {
	if now == nil {
		now = time.Now
	}
	d := declaredDefaults().Verify
	v.Preset = cmp.Or(v.Preset, d.Preset)
	v.Algorithm = cmp.Or(v.Algorithm, d.Algorithm)
	v.Encoding = cmp.Or(v.Encoding, d.Encoding)
	v.Tolerance = cmp.Or(v.Tolerance, d.Tolerance)
	p, ok := presets[v.Preset]
	if !ok {
		return nil, fmt.Errorf("verify.preset: unknown preset %q", v.Preset)
	}
	if p.verifier == nil {
		return nil, nil
	}
	return p.verifier(v, now)
}

// hmacWith returns the verifier constructor of a provider whose deliveries
// carry an HMAC of the body as the hmac preset would with the settings
// fixed (algorithm, encoding, header, prefix); the configuration gives the
// secrets only.
func hmacWith(fixed VerifyConfig) func(VerifyConfig, func() time.Time) (webhook.Verifier, error) {
	return func(v VerifyConfig, now func() time.Time) (webhook.Verifier, error) {
		fixed.Secrets = v.Secrets
		return newHMACVerifier(fixed, now)
	}
}

// newHMACVerifier is the verifier of the hmac preset.
func newHMACVerifier(v VerifyConfig, _ func() time.Time) (webhook.Verifier, error) {
	h, err := hashOf(v.Algorithm)
	if err != nil {
		return nil, err
	}
	return &hmacVerifier{macs: macPools(h, secretKeys(v.Secrets)), header: v.Header, prefix: v.Prefix, base64: v.Encoding == "base64"}, nil
}

// newStandardVerifier is the verifier of the standard_webhooks preset.
func newStandardVerifier(v VerifyConfig, now func() time.Time) (webhook.Verifier, error) {
	keys := make([][]byte, len(v.Secrets))
	for i, s := range v.Secrets {
		k, err := standardSecret(s)
		if err != nil {
			return nil, fmt.Errorf("verify.secrets[%d]: not a Standard Webhooks secret", i)
		}
		keys[i] = k
	}
	return &standardVerifier{macs: macPools(sha256.New, keys), tolerance: v.Tolerance, now: now}, nil
}

// secretKeys returns the secrets as HMAC keys, used as they are.
func secretKeys(secrets []string) [][]byte {
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		keys[i] = []byte(s)
	}
	return keys
}

// standardSecret decodes a Standard Webhooks secret: whsec_ followed by
// base64.
func standardSecret(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
}

func hashOf(alg string) (func() hash.Hash, error) {
	switch alg {
	case "sha1":
		return sha1.New, nil
	case "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("verify.algorithm: unknown algorithm %q", alg)
}

// mac computes the HMAC of parts under key.

func missing(header string) error {
	return fmt.Errorf("%w: header %s missing", webhook.ErrUnverified, header)
}

func mismatch(header string) error {
	return fmt.Errorf("%w: signature in %s matches no secret", webhook.ErrUnverified, header)
}

// macPool recycles the HMAC states of one key, so that checking a delivery
// costs neither the key's setup (two hash blocks) nor allocations.
type macPool struct{ p sync.Pool }

// macState is a pooled HMAC state with the room its sum is written in: a
// sum written to the caller's stack would escape through hash.Hash.
type macState struct {
	h   hash.Hash
	out [sha512.Size]byte
}

// macPools returns a pool per key, in the keys' order.
func macPools(h func() hash.Hash, keys [][]byte) []*macPool {
	out := make([]*macPool, len(keys))
	for i, key := range keys {
		out[i] = &macPool{}
		out[i].p.New = func() any { return &macState{h: hmac.New(h, key)} }
	}
	return out
}

// matches reports whether the HMAC of the concatenated parts is one of
// sigs, each compared in constant time (hmac.Equal).
func (mp *macPool) matches(sigs [][]byte, parts ...[]byte) bool {
	m := mp.p.Get().(*macState)
	m.h.Reset()
	for _, p := range parts {
		m.h.Write(p)
	}
	sum := m.h.Sum(m.out[:0])
	ok := false
	for _, sig := range sigs {
		if hmac.Equal(sum, sig) {
			ok = true
		}
	}
	mp.p.Put(m)
	return ok
}

// decodeHex decodes the hex string s into buf when it fits, else into a
// new slice, as hex.DecodeString does, without converting s to bytes
// first.
func decodeHex(buf []byte, s string) ([]byte, error) {
	if len(s)%2 != 0 || len(s)/2 > len(buf) {
		return hex.DecodeString(s)
	}
	out := buf[:len(s)/2]
	for i := range out {
		hi, ok1 := fromHex(s[2*i])
		lo, ok2 := fromHex(s[2*i+1])
		if !ok1 || !ok2 {
			return hex.DecodeString(s)
		}
		out[i] = hi<<4 | lo
	}
	return out, nil
}

// fromHex returns the value of the hex digit c.
func fromHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// hmacVerifier checks an HMAC of the raw body carried in one header.
type hmacVerifier struct {
	macs   []*macPool // one per secret
	header string
	prefix string
	base64 bool
}

func (v *hmacVerifier) Verify(r *http.Request, body []byte) error {
	val := r.Header.Get(v.header)
	if val == "" {
		return missing(v.header)
	}
	sig, ok := strings.CutPrefix(strings.TrimSpace(val), v.prefix)
	if !ok {
		return fmt.Errorf("%w: header %s does not start with %q", webhook.ErrUnverified, v.header, v.prefix)
	}
	var (
		got []byte
		err error
		buf [sha512.Size]byte
	)
	if v.base64 {
		got, err = base64.StdEncoding.DecodeString(sig)
	} else {
		got, err = decodeHex(buf[:], sig)
	}
	if err != nil {
		return fmt.Errorf("%w: header %s is not valid %s", webhook.ErrUnverified, v.header, map[bool]string{true: "base64", false: "hex"}[v.base64])
	}
	for _, mp := range v.macs {
		if mp.matches([][]byte{got}, body) {
			return nil
		}
	}
	return mismatch(v.header)
}

// checkTime reports whether the Unix timestamp ts lies within tolerance of
// now.
func checkTime(ts string, now time.Time, tolerance time.Duration) error {
	secs, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not Unix seconds", webhook.ErrUnverified, ts)
	}
	d := now.Sub(time.Unix(secs, 0))
	if d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %d is %s away from the local clock, beyond the tolerance of %s", webhook.ErrUnverified, secs, d.Round(time.Second), tolerance)
	}
	return nil
}

// StripeHeader is the parsed Stripe-Signature header.
type StripeHeader struct {
	Timestamp  string
	Signatures [][]byte // the v1 signatures, decoded
}

// ParseStripeHeader parses a Stripe-Signature header value:
// comma-separated key=value pairs with one t (Unix seconds) and any number
// of v1 (hex HMAC-SHA256) entries; other schemes (v0) are ignored.
func ParseStripeHeader(val string) (StripeHeader, error) {
	var h StripeHeader
	for part := range strings.SplitSeq(val, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return StripeHeader{}, fmt.Errorf("entry %q is not key=value", part)
		}
		switch k {
		case "t":
			if h.Timestamp != "" {
				return StripeHeader{}, errors.New("timestamp given twice")
			}
			h.Timestamp = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil {
				return StripeHeader{}, errors.New("a v1 signature is not hex")
			}
			h.Signatures = append(h.Signatures, sig)
		}
	}
	if h.Timestamp == "" {
		return StripeHeader{}, errors.New("no timestamp (t=)")
	}
	if len(h.Signatures) == 0 {
		return StripeHeader{}, errors.New("no v1 signature")
	}
	return h, nil
}

// stripeVerifier checks Stripe's Stripe-Signature: HMAC-SHA256 of
// "<t>.<body>" under the endpoint's signing secret (whsec_..., used as is).
type stripeVerifier struct {
	macs      []*macPool // one per secret
	tolerance time.Duration
	now       func() time.Time
}

func (v *stripeVerifier) Verify(r *http.Request, body []byte) error {
	const header = "Stripe-Signature"
	val := r.Header.Get(header)
	if val == "" {
		return missing(header)
	}
	h, err := ParseStripeHeader(val)
	if err != nil {
		return fmt.Errorf("%w: header %s: %v", webhook.ErrUnverified, header, err)
	}
	if err := checkTime(h.Timestamp, v.now(), v.tolerance); err != nil {
		return err
	}
	for _, mp := range v.macs {
		if mp.matches(h.Signatures, []byte(h.Timestamp), []byte("."), body) {
			return nil
		}
	}
	return mismatch(header)
}

// slackVerifier checks Slack's v0 signature: X-Slack-Signature is
// "v0=" + hex HMAC-SHA256 of "v0:<X-Slack-Request-Timestamp>:<body>".
type slackVerifier struct {
	macs      []*macPool // one per secret
	tolerance time.Duration
	now       func() time.Time
}

func (v *slackVerifier) Verify(r *http.Request, body []byte) error {
	const sigHeader, tsHeader = "X-Slack-Signature", "X-Slack-Request-Timestamp"
	ts := r.Header.Get(tsHeader)
	if ts == "" {
		return missing(tsHeader)
	}
	val := r.Header.Get(sigHeader)
	if val == "" {
		return missing(sigHeader)
	}
	if err := checkTime(ts, v.now(), v.tolerance); err != nil {
		return err
	}
	hexSig, ok := strings.CutPrefix(val, "v0=")
	if !ok {
		return fmt.Errorf("%w: header %s does not start with v0=", webhook.ErrUnverified, sigHeader)
	}
	var buf [sha256.Size]byte
	sig, err := decodeHex(buf[:], hexSig)
	if err != nil {
		return fmt.Errorf("%w: header %s is not hex", webhook.ErrUnverified, sigHeader)
	}
	for _, mp := range v.macs {
		if mp.matches([][]byte{sig}, []byte("v0:"), []byte(ts), []byte(":"), body) {
			return nil
		}
	}
	return mismatch(sigHeader)
}

// ParseStandardSignatures parses a webhook-signature header value: space
// separated "<version>,<base64>" entries. It returns the decoded v1
// signatures; entries of other versions are skipped.
func ParseStandardSignatures(val string) ([][]byte, error) {
	var out [][]byte
	for entry := range strings.FieldsSeq(val) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok {
			return nil, fmt.Errorf("entry %q is not <version>,<signature>", truncate(entry))
		}
		if version != "v1" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			return nil, errors.New("a v1 signature is not base64")
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, errors.New("no v1 signature")
	}
	return out, nil
}

func truncate(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}

// standardVerifier checks Standard Webhooks signatures: HMAC-SHA256 of
// "<webhook-id>.<webhook-timestamp>.<body>" under the base64-decoded
// secret, any of several v1 signatures matching.
type standardVerifier struct {
	macs      []*macPool // one per secret
	tolerance time.Duration
	now       func() time.Time
}

func (v *standardVerifier) Verify(r *http.Request, body []byte) error {
	id := r.Header.Get("Webhook-Id")
	if id == "" {
		return missing("webhook-id")
	}
	ts := r.Header.Get("Webhook-Timestamp")
	if ts == "" {
		return missing("webhook-timestamp")
	}
	val := r.Header.Get("Webhook-Signature")
	if val == "" {
		return missing("webhook-signature")
	}
	if err := checkTime(ts, v.now(), v.tolerance); err != nil {
		return err
	}
	sigs, err := ParseStandardSignatures(val)
	if err != nil {
		return fmt.Errorf("%w: header webhook-signature: %v", webhook.ErrUnverified, err)
	}
	for _, mp := range v.macs {
		if mp.matches(sigs, []byte(id), []byte("."), []byte(ts), []byte("."), body) {
			return nil
		}
	}
	return mismatch("webhook-signature")
}

// credentialVerifier checks HTTP basic credentials or a bearer token. It
// compares SHA-256 digests in constant time, so that neither the content
// nor the length of a secret leaks through timing.
type credentialVerifier struct {
	user   [32]byte
	hashes [][32]byte
	basic  bool
}

func newCredentialVerifier(user string, secrets []string, basic bool) *credentialVerifier {
	v := &credentialVerifier{user: sha256.Sum256([]byte(user)), basic: basic}
	for _, s := range secrets {
		v.hashes = append(v.hashes, sha256.Sum256([]byte(s)))
	}
	return v
}

func (v *credentialVerifier) Verify(r *http.Request, _ []byte) error {
	if r.Header.Get("Authorization") == "" {
		return missing("Authorization")
	}
	var secret string
	if v.basic {
		user, pass, ok := r.BasicAuth()
		if !ok {
			return fmt.Errorf("%w: Authorization is not Basic credentials", webhook.ErrUnverified)
		}
		u := sha256.Sum256([]byte(user))
		if subtle.ConstantTimeCompare(u[:], v.user[:]) != 1 {
			// Still compare the password, so timing does not tell
			// whether the user name was right.
			v.match(pass)
			return fmt.Errorf("%w: wrong user name or password", webhook.ErrUnverified)
		}
		secret = pass
	} else {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return fmt.Errorf("%w: Authorization is not a Bearer token", webhook.ErrUnverified)
		}
		secret = strings.TrimSpace(tok)
	}
	if !v.match(secret) {
		if v.basic {
			return fmt.Errorf("%w: wrong user name or password", webhook.ErrUnverified)
		}
		return fmt.Errorf("%w: token matches no secret", webhook.ErrUnverified)
	}
	return nil
}

func (v *credentialVerifier) match(secret string) bool {
	got := sha256.Sum256([]byte(secret))
	ok := 0
	for _, h := range v.hashes {
		ok |= subtle.ConstantTimeCompare(got[:], h[:])
	}
	return ok == 1
}

var (
	_ webhook.Verifier = (*hmacVerifier)(nil)
	_ webhook.Verifier = (*stripeVerifier)(nil)
	_ webhook.Verifier = (*slackVerifier)(nil)
	_ webhook.Verifier = (*standardVerifier)(nil)
	_ webhook.Verifier = (*credentialVerifier)(nil)
)
