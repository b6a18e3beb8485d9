package rest

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/tributary/tributary/adapters/poll"
	"github.com/tributary/tributary/core"
)

// templates are the compiled request templates.
type templates struct {
	url    *template.Template
	body   *template.Template
	query  map[string]*template.Template
	header map[string]*template.Template
}

func compileTemplates(c *Config) (*templates, error) {
	t := &templates{query: map[string]*template.Template{}, header: map[string]*template.Template{}}
	var err error
	if t.url, err = template.New("url").Option("missingkey=error").Parse(c.URL); err != nil {
		return nil, &core.FieldError{Path: "url", Err: err}
	}
	if t.body, err = template.New("body").Option("missingkey=error").Parse(c.Body); err != nil {
		return nil, &core.FieldError{Path: "body", Err: err}
	}
	for k, v := range c.Query {
		if t.query[k], err = template.New(k).Option("missingkey=error").Parse(v); err != nil {
			return nil, &core.FieldError{Path: "query." + k, Err: err}
		}
	}
	for k, v := range c.Headers {
		if t.header[k], err = template.New(k).Option("missingkey=error").Parse(v); err != nil {
			return nil, &core.FieldError{Path: "headers." + k, Err: err}
		}
	}
	return t, nil
}

// tmplVars is what request templates see.
type tmplVars struct {
	// Cursor is the lower bound of the run, formatted; "" without one.
	Cursor string
	// HasCursor tells whether there is a lower bound.
	HasCursor bool
	// RunTime is the run's scheduled time, RFC 3339.
	RunTime string
}

func render(t *template.Template, v tmplVars) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, v); err != nil {
		return "", err
	}
	return b.String(), nil
}

// fetcher pages through the endpoint for the poll adapter.
type fetcher struct {
	cfg    *Config
	tmpl   *templates
	client *client
}

var _ poll.Fetcher = (*fetcher)(nil)

// Fetch requests the first page from the templates, then follows the
// pagination until a page says it is the last.
func (f *fetcher) Fetch(ctx context.Context, req poll.Request, emit func([]poll.Record) error) error {
	vars := tmplVars{RunTime: req.RunTime.UTC().Format(time.RFC3339Nano)}
	if req.Cursor != nil {
		vars.HasCursor = true
		switch c := req.Cursor.(type) {
		case time.Time:
			vars.Cursor = c.UTC().Format(f.cfg.Cursor.Layout)
		default:
			vars.Cursor = fmt.Sprint(c)
		}
	}
	first, err := f.firstRequest(vars)
	if err != nil {
		return core.Fatal(err)
	}
	p := f.cfg.Pagination
	r := first
	for page := 0; ; page++ {
		if page >= f.cfg.MaxPages {
			return fmt.Errorf("stopped after max_pages (%d) pages of %s: raise max_pages if the collection is that large", f.cfg.MaxPages, f.client.redact.url(first.url))
		}
		switch p.Type {
		case PageNumber:
			r.query.Set(p.PageParam, strconv.Itoa(p.StartPage+page))
		case PageOffset:
			r.query.Set(p.OffsetParam, strconv.Itoa(page*p.Size))
		}
		resp, err := f.client.do(ctx, r)
		if err != nil {
			return err
		}
		body, err := decode(f.cfg.Format, resp.header.Get("Content-Type"), resp.body)
		if err != nil {
			return fmt.Errorf("%s: %w", f.client.redact.url(r.url), err)
		}
		items, err := records(body, f.cfg.RecordsPath)
		if err != nil {
			return core.Fatal(fmt.Errorf("%s: %w", f.client.redact.url(r.url), err))
		}
		recs := make([]poll.Record, 0, len(items))
		for _, it := range items {
			rec, err := f.record(it, r.url)
			if err != nil {
				return core.Fatal(fmt.Errorf("%s: %w", f.client.redact.url(r.url), err))
			}
			recs = append(recs, rec)
		}
		if len(recs) > 0 {
			if err := emit(recs); err != nil {
				return err
			}
		}
		next, ok := f.next(r, resp, body, len(items))
		if !ok {
			return nil
		}
		r = next
	}
}

// firstRequest renders the templates.
func (f *fetcher) firstRequest(v tmplVars) (request, error) {
	u, err := render(f.tmpl.url, v)
	if err != nil {
		return request{}, fmt.Errorf("render url: %w", err)
	}
	r := request{method: f.cfg.Method, url: u, query: url.Values{}, header: map[string]string{}}
	for k, t := range f.tmpl.query {
		s, err := render(t, v)
		if err != nil {
			return request{}, fmt.Errorf("render query.%s: %w", k, err)
		}
		if s != "" {
			r.query.Set(k, s)
		}
	}
	for k, t := range f.tmpl.header {
		s, err := render(t, v)
		if err != nil {
			return request{}, fmt.Errorf("render headers.%s: %w", k, err)
		}
		r.header[k] = s
	}
	if r.body, err = render(f.tmpl.body, v); err != nil {
		return request{}, fmt.Errorf("render body: %w", err)
	}
	if p := f.cfg.Pagination; p.SizeParam != "" && p.Type != PageNone {
		r.query.Set(p.SizeParam, strconv.Itoa(p.Size))
	}
	return r, nil
}

// next returns the request of the next page, or false after the last.
func (f *fetcher) next(r request, resp *response, body any, n int) (request, bool) {
	p := f.cfg.Pagination
	switch p.Type {
	case PageNumber, PageOffset:
		return r, n >= p.Size
	case PageCursor:
		v, _ := lookup(body, p.CursorPath)
		tok := scalar(v)
		if tok == "" || n == 0 {
			return r, false
		}
		r.query = cloneValues(r.query)
		r.query.Set(p.CursorParam, tok)
		return r, true
	case PageNextLink:
		v, _ := lookup(body, p.NextPath)
		return linkRequest(r, scalar(v))
	case PageLinkHeader:
		return linkRequest(r, nextLink(resp.header.Values("Link")))
	}
	return r, false
}

// linkRequest follows a next-page URL, relative to the current one. The
// link carries its own query, so the templated one is dropped.
func linkRequest(r request, link string) (request, bool) {
	if link == "" {
		return r, false
	}
	base, err := url.Parse(r.url)
	if err != nil {
		return r, false
	}
	u, err := base.Parse(link)
	if err != nil || u.String() == r.url && len(r.query) == 0 {
		return r, false
	}
	r.url, r.query = u.String(), url.Values{}
	return r, true
}

// nextLink returns the rel="next" target of RFC 8288 Link headers.
func nextLink(headers []string) string {
	for _, h := range headers {
		for _, part := range splitLinks(h) {
			part = strings.TrimSpace(part)
			if !strings.HasPrefix(part, "<") {
				continue
			}
			end := strings.IndexByte(part, '>')
			if end < 0 {
				continue
			}
			target := part[1:end]
			for _, param := range strings.Split(part[end+1:], ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(param), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(v), `"`)) {
					if strings.EqualFold(rel, "next") {
						return target
					}
				}
			}
		}
	}
	return ""
}

// splitLinks splits a Link header at the commas between links, not those
// inside <...> or quotes.
func splitLinks(h string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(h); i++ {
		switch h[i] {
		case '<':
			if !quoted {
				depth++
			}
		case '>':
			if !quoted && depth > 0 {
				depth--
			}
		case '"':
			quoted = !quoted
		case ',':
			if depth == 0 && !quoted {
				out = append(out, h[start:i])
				start = i + 1
			}
		}
	}
	return append(out, h[start:])
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, x := range v {
		out[k] = append([]string(nil), x...)
	}
	return out
}

// record builds the poll record of one item.
func (f *fetcher) record(it map[string]any, page string) (poll.Record, error) {
	key := make(map[string]any, len(f.cfg.Key))
	for _, k := range f.cfg.Key {
		v, ok := lookup(it, k)
		if !ok || v == nil {
			return poll.Record{}, fmt.Errorf("a record has no key field %q", k)
		}
		key[k] = v
	}
	rec := poll.Record{Key: key, Data: it, Source: core.SourceInfo{Endpoint: endpoint(page)}}
	if f.cfg.Mode == ModeCursor {
		v, ok := lookup(it, f.cfg.Cursor.Field)
		if !ok || v == nil {
			return poll.Record{}, fmt.Errorf("a record (key %v) has no cursor field %q", key, f.cfg.Cursor.Field)
		}
		rec.Cursor = v
	}
	return rec, nil
}
