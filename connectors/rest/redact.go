package rest

import (
	"errors"
	"net/url"
	"slices"
	"strings"
)

// redaction stands in for a hidden value.
const redaction = "REDACTED"

// redactor hides the connector's secrets in what it shows: error messages
// (and so logs and the connector's status) and change metadata.
//
// A URL loses its user info, and the values of its query parameters except
// the pagination parameters the connector writes itself: the auth query
// parameter holds the api_key, a value written in `query:` may come from a
// secret reference, and a next-page link may carry a signed token. Any
// other text (an error a server sent back, which may quote the request)
// loses the secret values of the configuration wherever they appear, raw
// or URL-escaped.
type redactor struct {
	// shown are the query parameters whose values are shown.
	shown []string
	// secrets are the forms of the secret values to hide, longest first,
	// so that one containing another is hidden whole.
	secrets []string
}

// newRedactor returns the redactor of c.
func newRedactor(c *Config) *redactor {
	r := &redactor{}
	switch p := c.Pagination; p.Type {
	case PageNumber:
		r.shown = append(r.shown, p.PageParam, p.SizeParam)
	case PageOffset:
		r.shown = append(r.shown, p.OffsetParam, p.SizeParam)
	case PageCursor:
		// The token comes from the API and may be opaque state: hidden.
		r.shown = append(r.shown, p.SizeParam)
	}
	r.shown = slices.DeleteFunc(r.shown, func(s string) bool { return s == "" || s == c.Auth.QueryParam })
	values := []string{c.Auth.Password, c.Auth.Token, c.Auth.Key, c.Auth.ClientSecret}
	for _, raw := range []string{c.URL, c.Auth.TokenURL} {
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			pw, _ := u.User.Password()
			values = append(values, pw)
		}
	}
	for _, v := range values {
		if v == "" {
			continue
		}
		for _, form := range []string{v, url.QueryEscape(v), url.PathEscape(v)} {
			if !slices.Contains(r.secrets, form) {
				r.secrets = append(r.secrets, form)
			}
		}
	}
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return r
}

// url returns raw without user info, its hidden query values replaced by
// REDACTED and its fragment dropped. A URL that does not parse is not
// shown at all.
func (r *redactor) url(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User, u.Fragment, u.RawFragment = nil, "", ""
	if u.RawQuery != "" {
		var parts []string
		for part := range strings.SplitSeq(u.RawQuery, "&") {
			name, _, hasValue := strings.Cut(part, "=")
			key, err := url.QueryUnescape(name)
			switch {
			case !hasValue:
				parts = append(parts, part)
			case err == nil && slices.Contains(r.shown, key):
				parts = append(parts, part)
			default:
				parts = append(parts, name+"="+redaction)
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	return r.text(u.String())
}

// text returns s with the secret values replaced by REDACTED.
func (r *redactor) text(s string) string {
	for _, v := range r.secrets {
		s = strings.ReplaceAll(s, v, redaction)
	}
	return s
}

// request returns the error of a request that failed before it had an
// answer: net/http's *url.Error, which quotes the whole URL, gets the
// redacted one instead.
func (r *redactor) request(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: r.url(ue.URL), Err: ue.Err}
	}
	return err
}

// endpoint is the identity of an endpoint as changes and the status show
// it: scheme, host and path, without user info or query.
func endpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}
