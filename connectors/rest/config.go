package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/tributary/tributary/adapters/poll"
	"github.com/tributary/tributary/core"
)

// Pagination types.
const (
	PageNone       = "none"
	PageNumber     = "page"
	PageOffset     = "offset"
	PageCursor     = "cursor"
	PageNextLink   = "next_link"
	PageLinkHeader = "link_header"
)

// Auth types.
const (
	AuthNone   = "none"
	AuthBasic  = "basic"
	AuthBearer = "bearer"
	AuthAPIKey = "api_key"
	AuthOAuth2 = "oauth2"
)

// Response formats.
const (
	FormatAuto = "auto"
	FormatJSON = "json"
	FormatXML  = "xml"
)

// Modes.
const (
	ModeCursor   = "cursor"
	ModeSnapshot = "snapshot"
)

// Defaults.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultRetries      = 5
	DefaultRetryWait    = 500 * time.Millisecond
	DefaultRetryMaxWait = 30 * time.Second
	DefaultMaxPages     = 10000
	DefaultPageSize     = 100
)

// Config is the rest_poll connector's configuration.
type Config struct {
	poll.ScheduleConfig `yaml:",inline"`
	URL                 string            `yaml:"url"`
	Method              string            `yaml:"method"`
	Headers             map[string]string `yaml:"headers"`
	Query               map[string]string `yaml:"query"`
	Body                string            `yaml:"body"`
	Mode                string            `yaml:"mode"`
	Format              string            `yaml:"format"`
	RecordsPath         string            `yaml:"records_path"`
	Key                 []string          `yaml:"key"`
	Cursor              CursorConfig      `yaml:"cursor"`
	Pagination          PaginationConfig  `yaml:"pagination"`
	Auth                AuthConfig        `yaml:"auth"`
	Timeout             time.Duration     `yaml:"timeout"`
	Retries             int               `yaml:"retries"`
	RetryWait           time.Duration     `yaml:"retry_wait"`
	RetryMaxWait        time.Duration     `yaml:"retry_max_wait"`
	RateLimit           float64           `yaml:"rate_limit"`
	RateBurst           int               `yaml:"rate_burst"`
	MaxPages            int               `yaml:"max_pages"`
}

// CursorConfig is the watermark of cursor mode.
type CursorConfig struct {
	Field    string `yaml:"field"`
	Type     string `yaml:"type"`
	LookBack string `yaml:"look_back"`
	// Layout formats a timestamp cursor for templates (Go layout).
	Layout string `yaml:"layout"`
}

// PaginationConfig says how to ask for the next page.
type PaginationConfig struct {
	Type        string `yaml:"type"`
	PageParam   string `yaml:"page_param"`
	StartPage   int    `yaml:"start_page"`
	SizeParam   string `yaml:"size_param"`
	Size        int    `yaml:"size"`
	OffsetParam string `yaml:"offset_param"`
	CursorParam string `yaml:"cursor_param"`
	CursorPath  string `yaml:"cursor_path"`
	NextPath    string `yaml:"next_path"`
}

// AuthConfig authenticates requests.
type AuthConfig struct {
	Type         string   `yaml:"type"`
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password"`
	Token        string   `yaml:"token"`
	Header       string   `yaml:"header"`
	QueryParam   string   `yaml:"query_param"`
	Key          string   `yaml:"key"`
	TokenURL     string   `yaml:"token_url"`
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"`
	Scopes       []string `yaml:"scopes"`
}

// Fields declares the configuration for the registry.
func Fields() []core.Field {
	f := []core.Field{
		{Name: "url", Type: core.TypeString, Required: true, Example: "https://api.example.com/v1/orders", Doc: "Request URL; a Go template over .Cursor, .HasCursor and .RunTime (values are URL-escaped when used in query)."},
		{Name: "method", Type: core.TypeString, Default: http.MethodGet, Enum: []string{http.MethodGet, http.MethodPost}, Doc: "Request method."},
		{Name: "headers", Type: core.TypeMap, Doc: "Request headers; values are templates like url."},
		{Name: "query", Type: core.TypeMap, Example: "{updated_since: \"{{.Cursor}}\"}", Doc: "Query parameters; values are templates over .Cursor, .HasCursor and .RunTime. A parameter whose value renders empty is left out."},
		{Name: "body", Type: core.TypeString, Doc: "Request body of a POST, a template like url."},
		{Name: "mode", Type: core.TypeString, Default: ModeCursor, Enum: []string{ModeCursor, ModeSnapshot}, Doc: "cursor asks for records changed since the watermark; snapshot reads the whole collection and diffs it against a local index."},
		{Name: "format", Type: core.TypeString, Default: FormatAuto, Enum: []string{FormatAuto, FormatJSON, FormatXML}, Doc: "Response format; auto follows Content-Type."},
		{Name: "records_path", Type: core.TypeString, Example: "data.items", Doc: "Dotted path to the array of records in the response; empty when the response is the array."},
		{Name: "key", Type: core.TypeStrings, Required: true, Example: "[id]", Doc: "Record fields (dotted paths) identifying a record."},
		{Name: "cursor", Type: core.TypeObject, Doc: "The watermark of cursor mode.", Fields: []core.Field{
			{Name: "field", Type: core.TypeString, Example: "updated_at", Doc: "Record field (dotted path) holding the cursor."},
			{Name: "type", Type: core.TypeString, Default: string(poll.CursorTime), Enum: []string{string(poll.CursorTime), string(poll.CursorInt), string(poll.CursorString)}, Doc: "Type of the cursor."},
			{Name: "look_back", Type: core.TypeString, Default: "0", Example: "1m", Doc: "Read again below the watermark: a duration for timestamps, a count for integers. Records read twice are emitted once."},
			{Name: "layout", Type: core.TypeString, Default: time.RFC3339Nano, Doc: "Go time layout of .Cursor for timestamp cursors."},
		}},
		{Name: "pagination", Type: core.TypeObject, Doc: "How the next page is requested.", Fields: []core.Field{
			{Name: "type", Type: core.TypeString, Default: PageNone, Enum: []string{PageNone, PageNumber, PageOffset, PageCursor, PageNextLink, PageLinkHeader},
				Doc: "page (page number), offset (offset and limit), cursor (a token from the body), next_link (a URL from the body), link_header (RFC 8288 Link rel=next), none."},
			{Name: "page_param", Type: core.TypeString, Default: "page", Doc: "Query parameter of the page number."},
			{Name: "start_page", Type: core.TypeInt, Default: 1, Doc: "Number of the first page."},
			{Name: "size_param", Type: core.TypeString, Doc: "Query parameter of the page size (limit for offset paging); unset sends none."},
			{Name: "size", Type: core.TypeInt, Default: DefaultPageSize, Doc: "Page size; a shorter page is the last one."},
			{Name: "offset_param", Type: core.TypeString, Default: "offset", Doc: "Query parameter of the offset."},
			{Name: "cursor_param", Type: core.TypeString, Default: "cursor", Doc: "Query parameter carrying the next-page token."},
			{Name: "cursor_path", Type: core.TypeString, Example: "meta.next_cursor", Doc: "Dotted path to the next-page token in the body; empty or missing ends the run."},
			{Name: "next_path", Type: core.TypeString, Example: "links.next", Doc: "Dotted path to the next page's URL in the body."},
		}},
		{Name: "auth", Type: core.TypeObject, Doc: "Authentication.", Fields: []core.Field{
			{Name: "type", Type: core.TypeString, Default: AuthNone, Enum: []string{AuthNone, AuthBasic, AuthBearer, AuthAPIKey, AuthOAuth2}, Doc: "basic, bearer, api_key (in a header or query parameter), oauth2 (client credentials, refreshed before expiry and on 401), none."},
			{Name: "username", Type: core.TypeString, Doc: "User of basic."},
			{Name: "password", Type: core.TypeString, Secret: true, Doc: "Password of basic."},
			{Name: "token", Type: core.TypeString, Secret: true, Doc: "Token of bearer."},
			{Name: "header", Type: core.TypeString, Example: "X-API-Key", Doc: "Header carrying the api_key."},
			{Name: "query_param", Type: core.TypeString, Example: "api_key", Doc: "Query parameter carrying the api_key."},
			{Name: "key", Type: core.TypeString, Secret: true, Doc: "The api_key."},
			{Name: "token_url", Type: core.TypeString, Example: "https://auth.example.com/oauth2/token", Doc: "Token endpoint of oauth2."},
			{Name: "client_id", Type: core.TypeString, Doc: "Client id of oauth2."},
			{Name: "client_secret", Type: core.TypeString, Secret: true, Doc: "Client secret of oauth2."},
			{Name: "scopes", Type: core.TypeStrings, Doc: "Scopes of oauth2."},
		}},
		{Name: "timeout", Type: core.TypeDuration, Default: DefaultTimeout.String(), Doc: "Longest one request may take."},
		{Name: "retries", Type: core.TypeInt, Default: DefaultRetries, Doc: "Retries of a failed request within a run (network errors, 408, 429 and 5xx; any other 4xx is not retried) before the run fails."},
		{Name: "retry_wait", Type: core.TypeDuration, Default: DefaultRetryWait.String(), Doc: "First backoff; it doubles per retry, with jitter."},
		{Name: "retry_max_wait", Type: core.TypeDuration, Default: DefaultRetryMaxWait.String(), Doc: "Longest backoff, and longest Retry-After honoured within a run; a longer one ends the run and the connector waits it out."},
		{Name: "rate_limit", Type: core.TypeFloat, Default: 0.0, Doc: "Most requests per second this connector sends; 0 is unlimited."},
		{Name: "rate_burst", Type: core.TypeInt, Default: 1, Doc: "Requests allowed at once above rate_limit."},
		{Name: "max_pages", Type: core.TypeInt, Default: DefaultMaxPages, Doc: "Most pages one run reads, a guard against an API that never ends."},
	}
	return append(poll.ScheduleFields(), f...)
}

func (c *Config) applyDefaults() {
	c.ScheduleConfig.ApplyDefaults()
	if c.Method == "" {
		c.Method = http.MethodGet
	}
	if c.Mode == "" {
		c.Mode = ModeCursor
	}
	if c.Format == "" {
		c.Format = FormatAuto
	}
	if c.Cursor.Type == "" {
		c.Cursor.Type = string(poll.CursorTime)
	}
	if c.Cursor.LookBack == "" {
		c.Cursor.LookBack = "0"
	}
	if c.Cursor.Layout == "" {
		c.Cursor.Layout = time.RFC3339Nano
	}
	p := &c.Pagination
	if p.Type == "" {
		p.Type = PageNone
	}
	if p.PageParam == "" {
		p.PageParam = "page"
	}
	if p.StartPage == 0 && p.Type == PageNumber {
		p.StartPage = 1
	}
	if p.Size == 0 {
		p.Size = DefaultPageSize
	}
	if p.OffsetParam == "" {
		p.OffsetParam = "offset"
	}
	if p.CursorParam == "" {
		p.CursorParam = "cursor"
	}
	if c.Auth.Type == "" {
		c.Auth.Type = AuthNone
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.RetryWait == 0 {
		c.RetryWait = DefaultRetryWait
	}
	if c.RetryMaxWait == 0 {
		c.RetryMaxWait = DefaultRetryMaxWait
	}
	if c.RateBurst == 0 {
		c.RateBurst = 1
	}
	if c.MaxPages == 0 {
		c.MaxPages = DefaultMaxPages
	}
}

// lookBack parses cursor.look_back for the cursor type.
func (c *Config) lookBack() (time.Duration, int64, error) {
	s := strings.TrimSpace(c.Cursor.LookBack)
	if s == "0" || s == "" {
		return 0, 0, nil
	}
	switch poll.CursorKind(c.Cursor.Type) {
	case poll.CursorTime:
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return 0, 0, fmt.Errorf("%q is not a duration such as 1m, as a timestamp cursor needs", s)
		}
		return d, 0, nil
	case poll.CursorInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("%q is not a count such as 100, as an integer cursor needs", s)
		}
		return 0, n, nil
	}
	return 0, 0, fmt.Errorf("a string cursor has no look-back: remove it")
}

// Validate reports every problem at once. It never quotes a secret.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, core.FieldErrorf(path, format, args...))
	}
	pc := poll.Config{Mode: poll.ModeSnapshot, Fetcher: poll.FetcherFunc(func(context.Context, poll.Request, func([]poll.Record) error) error { return nil })}
	c.ScheduleConfig.Apply(&pc)
	if err := pc.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := template.New("url").Parse(c.URL); err != nil {
		add("url", "is not a valid template: %v", err)
	} else if u, err := url.Parse(strings.SplitN(c.URL, "{{", 2)[0]); err != nil {
		// The parse error quotes the URL, which may hold a password.
		add("url", "is not a URL: check its syntax")
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("url", "%q is not an http or https URL", endpoint(u.String()))
	}
	for k, v := range c.Query {
		if _, err := template.New(k).Parse(v); err != nil {
			add("query."+k, "is not a valid template: %v", err)
		}
	}
	for k, v := range c.Headers {
		if _, err := template.New(k).Parse(v); err != nil {
			add("headers."+k, "is not a valid template: %v", err)
		}
	}
	if _, err := template.New("body").Parse(c.Body); err != nil {
		add("body", "is not a valid template: %v", err)
	}
	switch c.Method {
	case http.MethodGet, http.MethodPost:
	default:
		add("method", "%q is not one of GET, POST", c.Method)
	}
	switch c.Format {
	case FormatAuto, FormatJSON, FormatXML:
	default:
		add("format", "%q is not one of auto, json, xml", c.Format)
	}
	if len(c.Key) == 0 {
		add("key", "is required: the record field(s) identifying a record, such as [id]")
	}
	switch c.Mode {
	case ModeCursor:
		if c.Cursor.Field == "" {
			add("cursor.field", "is required in cursor mode: the record field holding the last-modified time or increasing id")
		}
		switch poll.CursorKind(c.Cursor.Type) {
		case poll.CursorTime, poll.CursorInt, poll.CursorString:
			if _, _, err := c.lookBack(); err != nil {
				add("cursor.look_back", "%v", err)
			}
		default:
			add("cursor.type", "%q is not one of timestamp, integer, string", c.Cursor.Type)
		}
	case ModeSnapshot:
	default:
		add("mode", "%q is not one of cursor, snapshot", c.Mode)
	}
	p := c.Pagination
	switch p.Type {
	case PageNone, PageNumber, PageOffset, PageLinkHeader:
	case PageCursor:
		if p.CursorPath == "" {
			add("pagination.cursor_path", "is required for cursor pagination: where the body holds the next-page token")
		}
	case PageNextLink:
		if p.NextPath == "" {
			add("pagination.next_path", "is required for next_link pagination: where the body holds the next page's URL")
		}
	default:
		add("pagination.type", "%q is not one of none, page, offset, cursor, next_link, link_header", p.Type)
	}
	if p.Size < 1 {
		add("pagination.size", "%d must be at least 1", p.Size)
	}
	a := c.Auth
	switch a.Type {
	case AuthNone:
	case AuthBasic:
		if a.Username == "" {
			add("auth.username", "is required for basic")
		}
	case AuthBearer:
		if a.Token == "" {
			add("auth.token", "is required for bearer (is its variable or file set?)")
		}
	case AuthAPIKey:
		if a.Key == "" {
			add("auth.key", "is required for api_key (is its variable or file set?)")
		}
		if (a.Header == "") == (a.QueryParam == "") {
			add("auth", "api_key needs header or query_param, one of them")
		}
	case AuthOAuth2:
		if u, err := url.Parse(a.TokenURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			add("auth.token_url", "is required for oauth2: the token endpoint URL")
		}
		if a.ClientID == "" {
			add("auth.client_id", "is required for oauth2")
		}
		if a.ClientSecret == "" {
			add("auth.client_secret", "is required for oauth2 (is its variable or file set?)")
		}
	default:
		add("auth.type", "%q is not one of none, basic, bearer, api_key, oauth2", a.Type)
	}
	if c.Timeout < time.Millisecond {
		add("timeout", "%s is too short", c.Timeout)
	}
	if c.Retries < 0 {
		add("retries", "%d is negative", c.Retries)
	}
	if c.RateLimit < 0 {
		add("rate_limit", "%g is negative", c.RateLimit)
	}
	if c.MaxPages < 1 {
		add("max_pages", "%d must be at least 1", c.MaxPages)
	}
	return errors.Join(errs...)
}
