package rest

import (
	"errors"
	"net/http"
	"net/url"
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

// Config is the rest_poll connector's configuration. Each field declares
// its key (see core.FieldsOf); the README's Configuration section says more.
type Config struct {
	poll.ScheduleConfig `yaml:",inline"`
	URL                 string            `yaml:"url" required:"true" example:"https://api.example.com/v1/orders" doc:"Request URL; a Go template over .Cursor, .HasCursor and .RunTime (values are URL-escaped when used in query)."`
	Method              string            `yaml:"method" default:"GET" enum:"GET,POST" doc:"Request method."`
	Headers             map[string]string `yaml:"headers" doc:"Request headers; values are templates like url."`
	Query               map[string]string `yaml:"query" example:"{updated_since: \"{{.Cursor}}\"}" doc:"Query parameters; values are templates over .Cursor, .HasCursor and .RunTime. A parameter whose value renders empty is left out."`
	Body                string            `yaml:"body" doc:"Request body of a POST, a template like url."`
	Mode                string            `yaml:"mode" default:"cursor" enum:"cursor,snapshot" doc:"cursor asks for records changed since the watermark; snapshot reads the whole collection and diffs it against a local index."`
	Format              string            `yaml:"format" default:"auto" enum:"auto,json,xml" doc:"Response format; auto follows Content-Type."`
	RecordsPath         string            `yaml:"records_path" example:"data.items" doc:"Dotted path to the array of records in the response; empty when the response is the array."`
	Key                 []string          `yaml:"key" required:"true" example:"[id]" doc:"Record fields (dotted paths) identifying a record."`
	Cursor              CursorConfig      `yaml:"cursor" doc:"The watermark of cursor mode."`
	Pagination          PaginationConfig  `yaml:"pagination" doc:"How the next page is requested."`
	Auth                AuthConfig        `yaml:"auth" doc:"Authentication."`
	Timeout             time.Duration     `yaml:"timeout" default:"30s" doc:"Longest one request may take."`
	Retries             int               `yaml:"retries" default:"5" doc:"Retries of a failed request within a run (network errors, 408, 429 and 5xx; any other 4xx is not retried) before the run fails."`
	RetryWait           time.Duration     `yaml:"retry_wait" default:"500ms" doc:"First backoff; it doubles per retry, with jitter."`
	RetryMaxWait        time.Duration     `yaml:"retry_max_wait" default:"30s" doc:"Longest backoff, and longest Retry-After honoured within a run; a longer one ends the run and the connector waits it out."`
	RateLimit           float64           `yaml:"rate_limit" default:"0" doc:"Most requests per second this connector sends; 0 is unlimited."`
	RateBurst           int               `yaml:"rate_burst" default:"1" doc:"Requests allowed at once above rate_limit."`
	MaxPages            int               `yaml:"max_pages" default:"10000" doc:"Most pages one run reads, a guard against an API that never ends."`
}

// CursorConfig is the watermark of cursor mode.
type CursorConfig struct {
	Field string `yaml:"field" example:"updated_at" doc:"Record field (dotted path) holding the cursor."`
	Type  string `yaml:"type" default:"timestamp" enum:"timestamp,integer,string" doc:"Type of the cursor."`
	// LookBack is a duration for timestamp cursors, a count for integer
	// cursors; lookBack parses it.
	LookBack string `yaml:"look_back" default:"0" example:"1m" doc:"Read again below the watermark: a duration for timestamps, a count for integers. Records read twice are emitted once."`
	// Layout formats a timestamp cursor for templates (time.RFC3339Nano
	// by default).
	Layout string `yaml:"layout" default:"2006-01-02T15:04:05.999999999Z07:00" doc:"Go time layout of .Cursor for timestamp cursors."`
}

// PaginationConfig says how to ask for the next page.
type PaginationConfig struct {
	Type        string `yaml:"type" default:"none" enum:"none,page,offset,cursor,next_link,link_header" doc:"page (page number), offset (offset and limit), cursor (a token from the body), next_link (a URL from the body), link_header (RFC 8288 Link rel=next), none."`
	PageParam   string `yaml:"page_param" default:"page" doc:"Query parameter of the page number."`
	StartPage   int    `yaml:"start_page" default:"1" doc:"Number of the first page."`
	SizeParam   string `yaml:"size_param" doc:"Query parameter of the page size (limit for offset paging); unset sends none."`
	Size        int    `yaml:"size" default:"100" doc:"Page size; a shorter page is the last one."`
	OffsetParam string `yaml:"offset_param" default:"offset" doc:"Query parameter of the offset."`
	CursorParam string `yaml:"cursor_param" default:"cursor" doc:"Query parameter carrying the next-page token."`
	CursorPath  string `yaml:"cursor_path" example:"meta.next_cursor" doc:"Dotted path to the next-page token in the body; empty or missing ends the run."`
	NextPath    string `yaml:"next_path" example:"links.next" doc:"Dotted path to the next page's URL in the body."`
}

// AuthConfig authenticates requests.
type AuthConfig struct {
	Type         string   `yaml:"type" default:"none" enum:"none,basic,bearer,api_key,oauth2" doc:"basic, bearer, api_key (in a header or query parameter), oauth2 (client credentials, refreshed before expiry and on 401), none."`
	Username     string   `yaml:"username" doc:"User of basic."`
	Password     string   `yaml:"password" secret:"true" doc:"Password of basic."`
	Token        string   `yaml:"token" secret:"true" doc:"Token of bearer."`
	Header       string   `yaml:"header" example:"X-API-Key" doc:"Header carrying the api_key."`
	QueryParam   string   `yaml:"query_param" example:"api_key" doc:"Query parameter carrying the api_key."`
	Key          string   `yaml:"key" secret:"true" doc:"The api_key."`
	TokenURL     string   `yaml:"token_url" example:"https://auth.example.com/oauth2/token" doc:"Token endpoint of oauth2."`
	ClientID     string   `yaml:"client_id" doc:"Client id of oauth2."`
	ClientSecret string   `yaml:"client_secret" secret:"true" doc:"Client secret of oauth2."`
	Scopes       []string `yaml:"scopes" doc:"Scopes of oauth2."`
}

// lookBack parses cursor.look_back for the cursor type.
func (c *Config) lookBack() (time.Duration, int64, error) {
	return poll.ParseLookBack(poll.CursorKind(c.Cursor.Type), c.Cursor.LookBack)
}

// Validate reports every problem at once. It never quotes a secret.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, core.FieldErrorf(path, format, args...))
	}
	if err := c.ScheduleConfig.Validate(); err != nil {
		errs = append(errs, err)
	}
	c.validateRequest(add)
	c.validateMode(add)
	c.Pagination.validate(add)
	c.Auth.validate(add)
	c.validateLimits(add)
	return errors.Join(errs...)
}

// problems records a problem of the key at path.
type problems func(path, format string, args ...any)

// validateRequest checks what the request is made of: the URL, query,
// headers and body templates, the method, the response format and the
// key of its records.
func (c *Config) validateRequest(add problems) {
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
}

// validateMode checks the mode and, in cursor mode, the cursor.
func (c *Config) validateMode(add problems) {
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
}

// validate checks the pagination block.
func (p *PaginationConfig) validate(add problems) {
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
}

// validate checks the auth block: each type needs its own keys. It never
// quotes a secret.
func (a *AuthConfig) validate(add problems) {
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
}

// validateLimits checks the timeout, retries, rate limit and page bound.
func (c *Config) validateLimits(add problems) {
	if c.Timeout < time.Millisecond {
		add("timeout", "%s is too short", c.Timeout)
	}
	if c.Retries < 0 {
		add("retries", "%d is negative", c.Retries)
	}
	if c.RateLimit < 0 {
		add("rate_limit", "%g is negative", c.RateLimit)
	}
	if c.RateLimit > 0 && c.RateBurst < 1 {
		add("rate_burst", "%d must be at least 1 when rate_limit is set, or no request could be sent", c.RateBurst)
	}
	if c.MaxPages < 1 {
		add("max_pages", "%d must be at least 1", c.MaxPages)
	}
}
