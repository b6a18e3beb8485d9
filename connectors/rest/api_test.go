package rest_test

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/core/conformance"

	connector "github.com/tributary/tributary/connectors/rest"
	"github.com/tributary/tributary/core"
)

// api is a fake HTTP API over a collection of items, paging every way the
// connector supports.
type api struct {
	mu     sync.Mutex
	items  map[int]item
	hidden map[int]bool
	base   time.Time
	// auth checks a request; nil accepts all.
	auth func(r *http.Request) bool
	// fail answers a request instead of the handler when it returns true.
	fail     func(w http.ResponseWriter, r *http.Request) bool
	requests int
	srv      *httptest.Server
}

type item struct {
	ID      int       `json:"id" xml:"id"`
	Name    string    `json:"name" xml:"name"`
	Updated time.Time `json:"updated_at" xml:"updated_at"`
}

func newAPI(t conformance.TB) *api {
	a := &api{items: map[int]item{}, hidden: map[int]bool{}, base: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *api) put(id, sec int, name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.items[id] = item{ID: id, Name: name, Updated: a.base.Add(time.Duration(sec) * time.Second)}
}

func (a *api) del(id int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.items, id)
}

func (a *api) hide(id int, h bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hidden[id] = h
}

func (a *api) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests
}

// list returns the visible items updated at or after since, ordered.
func (a *api) list(since string) []item {
	var out []item
	var from time.Time
	if since != "" {
		from, _ = time.Parse(time.RFC3339Nano, since)
	}
	for _, it := range a.items {
		if !a.hidden[it.ID] && !it.Updated.Before(from) {
			out = append(out, it)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Updated.Equal(out[j].Updated) {
			return out[i].Updated.Before(out[j].Updated)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func atoi(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

// serve answers /{paging}/items. Paging is one of none, page, offset,
// cursor, next, link, xml.
func (a *api) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests++
	a.mu.Unlock()
	if a.fail != nil && a.fail(w, r) {
		return
	}
	if a.auth != nil && !a.auth(r) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	a.mu.Lock()
	all := a.list(q.Get("since"))
	a.mu.Unlock()
	paging := strings.Split(strings.Trim(r.URL.Path, "/"), "/")[0]
	size := atoi(q.Get("size"), 2)
	start, end := 0, len(all)
	switch paging {
	case "page", "xml":
		start = (atoi(q.Get("page"), 1) - 1) * size
	case "offset":
		start = atoi(q.Get("offset"), 0)
	case "cursor", "next", "link":
		start = atoi(q.Get("after"), 0)
	}
	if paging != "none" {
		end = start + size
	}
	start, end = min(start, len(all)), min(end, len(all))
	page := all[start:end]
	more := end < len(all)
	nextURL := ""
	if more {
		nq := r.URL.Query()
		nq.Set("after", strconv.Itoa(end))
		nextURL = r.URL.Path + "?" + nq.Encode()
	}
	if paging == "xml" {
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		type itemsXML struct {
			XMLName xml.Name `xml:"response"`
			Items   []item   `xml:"items>item"`
		}
		xml.NewEncoder(w).Encode(itemsXML{Items: page})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	body := map[string]any{"data": map[string]any{"items": page}}
	switch paging {
	case "cursor":
		if more {
			body["meta"] = map[string]any{"next_cursor": strconv.Itoa(end)}
		}
	case "next":
		if more {
			body["links"] = map[string]any{"next": nextURL}
		}
	case "link":
		if more {
			w.Header().Add("Link", `<`+a.srv.URL+`/other>; rel="prev", <`+a.srv.URL+nextURL+`>; rel="next"`)
		}
	}
	json.NewEncoder(w).Encode(body)
}

func newSource(t conformance.TB, values map[string]any) *connector.Source {
	t.Helper()
	if _, ok := values["schedule"]; !ok {
		values["schedule"] = "@every 10ms"
	}
	if _, ok := values["retry_wait"]; !ok {
		values["retry_wait"] = "1ms"
	}
	s := connector.New()
	if err := s.Configure(core.NewConfig("api", values)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return s
}

func names(chs []core.Change) []string {
	var out []string
	for _, ch := range chs {
		if ch.Op == core.OpDelete {
			out = append(out, fmt.Sprintf("delete:%v", ch.Key["id"]))
			continue
		}
		out = append(out, fmt.Sprintf("%v", ch.After["name"]))
	}
	return out
}

func cursorValues(url string) map[string]any {
	return map[string]any{
		"url":          url,
		"query":        map[string]any{"since": "{{.Cursor}}", "size": "2"},
		"records_path": "data.items",
		"key":          []any{"id"},
		"cursor":       map[string]any{"field": "updated_at", "type": "timestamp", "look_back": "1m"},
	}
}

func testEnv(t testing.TB) core.Env { return conformance.TestEnv(t, "api") }

var (
	open   = conformance.Open
	readN  = conformance.ReadN
	settle = conformance.Settle
)
