package rest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/config/configtest"

	connector "github.com/tributary/tributary/connectors/rest"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
)

func TestPagination(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		paging map[string]any
		format string
	}{
		{name: "none", path: "/none/items", paging: map[string]any{"type": "none"}},
		{name: "page number", path: "/page/items", paging: map[string]any{"type": "page", "page_param": "page", "size_param": "size", "size": 2}},
		{name: "offset", path: "/offset/items", paging: map[string]any{"type": "offset", "offset_param": "offset", "size_param": "size", "size": 2}},
		{name: "cursor token", path: "/cursor/items", paging: map[string]any{"type": "cursor", "cursor_param": "after", "cursor_path": "meta.next_cursor"}},
		{name: "next link", path: "/next/items", paging: map[string]any{"type": "next_link", "next_path": "links.next"}},
		{name: "link header", path: "/link/items", paging: map[string]any{"type": "link_header"}},
		{name: "xml", path: "/xml/items", paging: map[string]any{"type": "page", "size_param": "size", "size": 2}, format: "xml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAPI(t)
			for i := 1; i <= 5; i++ {
				a.put(i, i/2, fmt.Sprint("n", i))
			}
			v := cursorValues(a.srv.URL + tt.path)
			v["pagination"] = tt.paging
			if tt.format == "xml" {
				v["records_path"] = "response.items.item"
			}
			s := newSource(t, v)
			open(t, s, testEnv(t), core.Position{})
			got := readN(t, s, 5)
			if want := []string{"n1", "n2", "n3", "n4", "n5"}; !slices.Equal(names(got), want) {
				t.Fatalf("read %v, want %v", names(got), want)
			}
			a.put(6, 9, "n6")
			more := readN(t, s, 1)
			more = append(more, settle(t, s, 60*time.Millisecond)...)
			if want := []string{"n6"}; !slices.Equal(names(more), want) {
				t.Fatalf("then read %v, want %v", names(more), want)
			}
		})
	}
}

// TestZeroBasedPages: start_page: 0 asks for page 0 first, for APIs that
// count pages from 0.
func TestZeroBasedPages(t *testing.T) {
	a := newAPI(t)
	a.put(1, 1, "n1")
	first := make(chan string, 1)
	a.fail = func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case first <- r.URL.Query().Get("p"):
		default:
		}
		return false
	}
	v := cursorValues(a.srv.URL + "/none/items")
	v["pagination"] = map[string]any{"type": "page", "page_param": "p", "start_page": 0}
	s := newSource(t, v)
	open(t, s, testEnv(t), core.Position{})
	readN(t, s, 1)
	if got := <-first; got != "0" {
		t.Fatalf("first request asked for page %q, want \"0\"", got)
	}
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name  string
		auth  map[string]any
		check func(r *http.Request) bool
	}{
		{name: "basic", auth: map[string]any{"type": "basic", "username": "u", "password": "p"},
			check: func(r *http.Request) bool { u, p, ok := r.BasicAuth(); return ok && u == "u" && p == "p" }},
		{name: "bearer", auth: map[string]any{"type": "bearer", "token": "t0k"},
			check: func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer t0k" }},
		{name: "api key header", auth: map[string]any{"type": "api_key", "header": "X-Api-Key", "key": "k1"},
			check: func(r *http.Request) bool { return r.Header.Get("X-Api-Key") == "k1" }},
		{name: "api key query", auth: map[string]any{"type": "api_key", "query_param": "api_key", "key": "k2"},
			check: func(r *http.Request) bool { return r.URL.Query().Get("api_key") == "k2" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAPI(t)
			a.auth = tt.check
			a.put(1, 0, "n1")
			v := cursorValues(a.srv.URL + "/none/items")
			v["auth"] = tt.auth
			s := newSource(t, v)
			open(t, s, testEnv(t), core.Position{})
			if got := readN(t, s, 1); names(got)[0] != "n1" {
				t.Fatalf("read %v", names(got))
			}
		})
	}
	t.Run("rejected credentials are fatal", func(t *testing.T) {
		a := newAPI(t)
		a.auth = func(*http.Request) bool { return false }
		v := cursorValues(a.srv.URL + "/none/items")
		v["auth"] = map[string]any{"type": "bearer", "token": "wrong"}
		s := newSource(t, v)
		open(t, s, testEnv(t), core.Position{})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := s.Read(ctx)
		if !errors.Is(err, core.ErrFatal) || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "wrong") {
			t.Fatalf("Read() = %v, want a fatal 401 that does not quote the token", err)
		}
	})
}

// TestOAuth2TokenExpiresMidRun: the API stops accepting each token after
// three requests, although the token endpoint said it lasts an hour; the
// run refreshes it on the 401 and reads every page.
func TestOAuth2TokenExpiresMidRun(t *testing.T) {
	a := newAPI(t)
	var mu sync.Mutex
	issued, uses := 0, map[string]int{}
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		if id != "cid" || secret != "csecret" || r.FormValue("grant_type") != "client_credentials" || r.FormValue("scope") != "read" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		mu.Lock()
		issued++
		tok := fmt.Sprint("tok-", issued)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"bearer","expires_in":3600}`, tok)
	}))
	defer tokens.Close()
	a.auth = func(r *http.Request) bool {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		defer mu.Unlock()
		uses[tok]++
		return strings.HasPrefix(tok, "tok-") && uses[tok] <= 3
	}
	for i := 1; i <= 20; i++ {
		a.put(i, i, fmt.Sprint("n", i))
	}
	v := cursorValues(a.srv.URL + "/page/items")
	v["pagination"] = map[string]any{"type": "page", "size_param": "size", "size": 2}
	v["auth"] = map[string]any{"type": "oauth2", "token_url": tokens.URL, "client_id": "cid", "client_secret": "csecret", "scopes": []any{"read"}}
	s := newSource(t, v)
	open(t, s, testEnv(t), core.Position{})
	got := readN(t, s, 20)
	if len(got) != 20 {
		t.Fatalf("read %d, want 20", len(got))
	}
	mu.Lock()
	defer mu.Unlock()
	if issued < 4 {
		t.Fatalf("%d tokens issued for 11 requests, want a refresh whenever one expired", issued)
	}
}

func TestTooManyRequestsStorm(t *testing.T) {
	a := newAPI(t)
	var mu sync.Mutex
	refused := 0
	a.fail = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if refused < 25 {
			refused++
			w.Header().Set("Retry-After", "0")
			status := http.StatusTooManyRequests
			if refused%5 == 0 {
				status = http.StatusServiceUnavailable
			}
			w.WriteHeader(status)
			return true
		}
		return false
	}
	for i := 1; i <= 4; i++ {
		a.put(i, i, fmt.Sprint("n", i))
	}
	v := cursorValues(a.srv.URL + "/page/items")
	v["pagination"] = map[string]any{"type": "page", "size_param": "size", "size": 2}
	v["retries"] = 30
	v["rate_limit"] = 1000.0
	s := newSource(t, v)
	open(t, s, testEnv(t), core.Position{})
	if got := readN(t, s, 4); len(got) != 4 {
		t.Fatalf("read %d", len(got))
	}
	if a.count() < 26 {
		t.Fatalf("%d requests, want the 25 refused ones retried", a.count())
	}
}

func TestRetryAfterBeyondMaxWait(t *testing.T) {
	a := newAPI(t)
	a.fail = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	}
	v := cursorValues(a.srv.URL + "/none/items")
	v["retry_max_wait"] = "1s"
	s := newSource(t, v)
	open(t, s, testEnv(t), core.Position{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s.Read(ctx)
	var re *core.RetryError
	if !errors.As(err, &re) || re.After != 2*time.Minute {
		t.Fatalf("Read() = %v, want a RetryError asking the runtime to wait 2m", err)
	}
}

func TestOutOfOrderCommits(t *testing.T) {
	a := newAPI(t)
	a.put(1, 10, "n1")
	a.put(2, 12, "n2")
	a.put(3, 11, "late") // committed late, timestamped before n2
	a.hide(3, true)
	s := newSource(t, cursorValues(a.srv.URL+"/none/items"))
	open(t, s, testEnv(t), core.Position{})
	got := readN(t, s, 2)
	a.hide(3, false)
	a.put(4, 12, "same") // shares the watermark's timestamp
	got = append(got, readN(t, s, 2)...)
	got = append(got, settle(t, s, 80*time.Millisecond)...)
	n := names(got)
	sort.Strings(n[2:])
	if want := []string{"n1", "n2", "late", "same"}; !slices.Equal(n, want) {
		t.Fatalf("read %v, want %v (each once)", n, want)
	}
}

func TestSnapshotDiff(t *testing.T) {
	a := newAPI(t)
	for i := 1; i <= 4; i++ {
		a.put(i, 0, fmt.Sprint("n", i))
	}
	v := map[string]any{
		"url": a.srv.URL + "/link/items", "mode": "snapshot", "records_path": "data.items", "key": []any{"id"},
		"pagination": map[string]any{"type": "link_header"},
	}
	s := newSource(t, v)
	open(t, s, testEnv(t), core.Position{})
	got := readN(t, s, 4)
	if err := s.Ack(context.Background(), got[3].Position); err != nil {
		t.Fatal(err)
	}
	a.del(2)
	a.put(3, 0, "n3b")
	diff := readN(t, s, 2)
	n := names(diff)
	sort.Strings(n)
	if want := []string{"delete:2", "n3b"}; !slices.Equal(n, want) {
		t.Fatalf("diff %v, want %v", n, want)
	}
}

func TestRetryAfterDate(t *testing.T) {
	// The HTTP-date form is honoured too: the storm test covers seconds.
	a := newAPI(t)
	var mu sync.Mutex
	once := false
	a.fail = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if once {
			return false
		}
		once = true
		w.Header().Set("Retry-After", time.Now().Add(-time.Second).UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	}
	a.put(1, 0, "n1")
	s := newSource(t, cursorValues(a.srv.URL+"/none/items"))
	open(t, s, testEnv(t), core.Position{})
	readN(t, s, 1)
}

// apis gives each conformance check its own API.
type apis struct {
	mu sync.Mutex
	m  map[string]*api
	n  map[string]int
}

func (x *apis) get(t conformance.TB) *api {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil {
		x.m, x.n = map[string]*api{}, map[string]int{}
	}
	a, ok := x.m[t.Name()]
	if !ok {
		a = newAPI(t)
		x.m[t.Name()] = a
	}
	return a
}

func (x *apis) produce(t conformance.TB, k int) {
	a := x.get(t)
	x.mu.Lock()
	defer x.mu.Unlock()
	for range k {
		x.n[t.Name()]++
		n := x.n[t.Name()]
		a.put(n, n/2, fmt.Sprint("n", n))
	}
}

func TestConformance(t *testing.T) {
	var x apis
	conformance.Run(t, conformance.Harness{
		New: func(t conformance.TB) core.Source {
			v := cursorValues(x.get(t).srv.URL + "/cursor/items")
			v["pagination"] = map[string]any{"type": "cursor", "cursor_param": "after", "cursor_path": "meta.next_cursor"}
			return newSource(t, v)
		},
		Produce:      x.produce,
		Capabilities: conformance.Capabilities{Resume: true, Ordered: true},
	})
}

func TestSampleConfigures(t *testing.T) {
	configtest.Sample(t, "sample.yaml", connector.Spec())
}

func TestRegistered(t *testing.T) {
	if _, ok := core.DefaultRegistry.Source(connector.Type); !ok {
		t.Fatal("rest_poll is not registered")
	}
	core.NewRegistry().RegisterSource(connector.Spec())
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(v map[string]any)
		path   string
	}{
		{name: "valid", change: func(map[string]any) {}},
		{name: "bad url", change: func(v map[string]any) { v["url"] = "ftp://x" }, path: "url"},
		{name: "bad template", change: func(v map[string]any) { v["query"] = map[string]any{"since": "{{.Cursor"} }, path: "query.since"},
		{name: "no key", change: func(v map[string]any) { delete(v, "key") }, path: "key"},
		{name: "no cursor field", change: func(v map[string]any) { v["cursor"] = map[string]any{} }, path: "cursor.field"},
		{name: "cursor paging without path", change: func(v map[string]any) { v["pagination"] = map[string]any{"type": "cursor"} }, path: "pagination.cursor_path"},
		{name: "bad paging", change: func(v map[string]any) { v["pagination"] = map[string]any{"type": "infinite"} }, path: "pagination.type"},
		{name: "api key nowhere", change: func(v map[string]any) { v["auth"] = map[string]any{"type": "api_key", "key": "k"} }, path: "auth"},
		{name: "oauth2 without secret", change: func(v map[string]any) {
			v["auth"] = map[string]any{"type": "oauth2", "token_url": "https://a/t", "client_id": "c"}
		}, path: "auth.client_secret"},
		{name: "bearer without token", change: func(v map[string]any) { v["auth"] = map[string]any{"type": "bearer"} }, path: "auth.token"},
		{name: "rate limit without burst", change: func(v map[string]any) { v["rate_limit"], v["rate_burst"] = 2.0, 0 }, path: "rate_burst"},
		{name: "rate burst without limit", change: func(v map[string]any) { v["rate_burst"] = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := cursorValues("https://api.example.com/items")
			tt.change(v)
			err := connector.New().Configure(core.NewConfig("api", v))
			if tt.path == "" {
				if err != nil {
					t.Fatalf("Configure() = %v", err)
				}
				return
			}
			for _, e := range core.Flatten(err) {
				var fe *core.FieldError
				if errors.As(e, &fe) && fe.Path == tt.path {
					return
				}
			}
			t.Fatalf("Configure() = %v, want an error on %s", err, tt.path)
		})
	}
}
