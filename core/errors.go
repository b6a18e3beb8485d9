package core

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrFatal marks an error that retrying cannot fix (bad credentials, a
// missing table, an invalid position). It stops the connector that returned
// it, and only that connector; its status says why.
var ErrFatal = errors.New("fatal")

// Fatal wraps err so that errors.Is(err, ErrFatal) holds.
func Fatal(err error) error {
	if err == nil {
		return nil
	}
	return fatalError{err}
}

type fatalError struct{ err error }

func (e fatalError) Error() string   { return e.err.Error() }
func (e fatalError) Unwrap() []error { return []error{e.err, ErrFatal} }

// RetryError asks the runtime to retry after a given delay (a rate limit's
// Retry-After, a locked resource) instead of its own backoff.
type RetryError struct {
	After time.Duration
	Err   error
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("retry after %s: %v", e.After, e.Err)
}

func (e *RetryError) Unwrap() error { return e.Err }

// FieldError is a problem with one configuration field. Path is the field's
// dotted path below the component's own configuration, such as
// "tls.cert_file" or "tables[2].name"; the config loader maps it to a file,
// line and column.
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrorf returns a *FieldError for path with a formatted message.
func FieldErrorf(path, format string, args ...any) error {
	return &FieldError{Path: path, Err: fmt.Errorf(format, args...)}
}

// PrefixFieldErrors prepends prefix to the path of every *FieldError found
// in err (which may be joined), so that a nested component's errors read
// from the caller's root.
func PrefixFieldErrors(prefix string, err error) error {
	if err == nil || prefix == "" {
		return err
	}
	var out []error
	for _, e := range flatten(err) {
		var fe *FieldError
		if errors.As(e, &fe) {
			p := prefix
			if fe.Path != "" {
				if strings.HasPrefix(fe.Path, "[") {
					p += fe.Path
				} else {
					p += "." + fe.Path
				}
			}
			out = append(out, &FieldError{Path: p, Err: fe.Err})
			continue
		}
		out = append(out, &FieldError{Path: prefix, Err: e})
	}
	return errors.Join(out...)
}

// Flatten returns the individual errors of a tree built with errors.Join.
func Flatten(err error) []error { return flatten(err) }

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		_, isFatal := err.(fatalError)
		_, isPermanent := err.(permanentError)
		if !isFatal && !isPermanent {
			var out []error
			for _, e := range j.Unwrap() {
				out = append(out, flatten(e)...)
			}
			return out
		}
	}
	return []error{err}
}

// ErrPermanent marks a publish error that retrying the same events cannot
// fix: the stream refused a record for what it is (larger than the broker
// accepts, an invalid record), not because it is unavailable. A stream's
// publisher wraps such errors with Permanent; the runtime then finds the
// refused events and dead-letters them (or stops the connector, as its
// on_publish_error option says) instead of retrying them forever.
var ErrPermanent = errors.New("permanent")

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }
