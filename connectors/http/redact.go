package http

import (
	"cmp"
	"encoding/base64"
	"slices"
	"strings"
)

// redaction stands in for a hidden value.
const redaction = "REDACTED"

// sensitiveWords mark a header whose value is a credential: a header whose
// name holds one of them is hidden like a secret key.
var sensitiveWords = []string{"auth", "key", "token", "secret", "password", "signature", "cookie", "session", "credential"}

// sensitiveHeader reports whether the header called name carries a
// credential.
func sensitiveHeader(name string) bool {
	lower := strings.ToLower(name)
	for _, w := range sensitiveWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// redactor hides the sink's secrets in what it shows: a Result's Response
// (an endpoint may echo the request it refuses, credentials included) and
// its error. The secrets are the auth block's token and password (and the
// Authorization value made of them), the signing secrets, and the literal
// parts of headers whose names say they carry a credential (X-Api-Key,
// X-Auth-Token, Cookie).
type redactor struct {
	secrets  []string
	replacer *strings.Replacer
}

// newRedactor returns the redactor of c.
func newRedactor(c *Config) *redactor {
	var values []string
	if c.Auth.Bearer != "" {
		values = append(values, c.Auth.Bearer)
	}
	if b := c.Auth.Basic; b != nil && b.Password != "" {
		values = append(values, b.Password, basicCredentials(b))
	}
	for _, s := range c.SigningSecrets {
		values = append(values, s, strings.TrimPrefix(s, "whsec_"))
	}
	for name, v := range c.Headers {
		if !sensitiveHeader(name) {
			continue
		}
		segs, _ := splitTemplate(v)
		for _, seg := range segs {
			if !seg.expr {
				values = append(values, strings.TrimSpace(seg.text))
			}
		}
	}
	return newRedactorOf(values)
}

// newRedactorOf returns a redactor of values.
func newRedactorOf(values []string) *redactor {
	values = slices.DeleteFunc(values, func(s string) bool { return s == "" })
	// Longest first, so that a secret holding another is hidden whole.
	slices.SortFunc(values, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	values = slices.Compact(values)
	r := &redactor{secrets: values}
	if len(values) > 0 {
		pairs := make([]string, 0, 2*len(values))
		for _, v := range values {
			pairs = append(pairs, v, redaction)
		}
		r.replacer = strings.NewReplacer(pairs...)
	}
	return r
}

// text returns s with every secret, and every value of extra (the
// rendered values of a delivery's credential headers), hidden.
func (r *redactor) text(s string, extra ...string) string {
	if r.replacer != nil {
		s = r.replacer.Replace(s)
	}
	for _, v := range extra {
		if v != "" {
			s = strings.ReplaceAll(s, v, redaction)
		}
	}
	return s
}

// basicCredentials is the base64 of "user:password", as the Authorization
// header carries it.
func basicCredentials(b *BasicConfig) string {
	return base64.StdEncoding.EncodeToString([]byte(b.Username + ":" + b.Password))
}
