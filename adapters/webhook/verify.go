package webhook

import (
	"errors"
	"net/http"
)

// Verifier checks that a delivery comes from its claimed sender: a
// signature over the raw body, a token, a password. Verify returns nil when
// the delivery is authentic and an error saying why not otherwise (the
// handler answers 401 and stores nothing). It must compare secrets in
// constant time, must not retain body, and is called concurrently from many
// requests. Error messages are logged and counted but never sent to the
// client, and they must never contain a secret.
type Verifier interface {
	Verify(r *http.Request, body []byte) error
}

// VerifierFunc adapts a function to a Verifier.
type VerifierFunc func(r *http.Request, body []byte) error

// Verify calls f.
func (f VerifierFunc) Verify(r *http.Request, body []byte) error { return f(r, body) }

var _ Verifier = VerifierFunc(nil)

// ErrUnverified is the error verifiers wrap when a delivery fails its check.
var ErrUnverified = errors.New("delivery not verified")
