package cli

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/lifecycle"
	"github.com/tributary/tributary/core/runtime"
)

// The console (/ui) is server-rendered HTML with one small script, all of
// it embedded: nothing is fetched from anywhere but the sidecar. Its
// buttons call the admin API, so it acts with the same rights.
//
//go:embed ui
var consoleFiles embed.FS

// consolePages are the console's templates, one per page, each with the
// shared layout.
type consolePages map[string]*template.Template

func parseConsole() (consolePages, error) {
	funcs := template.FuncMap{
		"age": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return time.Since(t).Round(time.Second).String()
		},
		"timeAttr": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.RFC3339Nano)
		},
	}
	pages := consolePages{}
	for _, p := range []string{"overview", "catalog", "tail", "deadletters", "login"} {
		t, err := template.New(p).Funcs(funcs).ParseFS(consoleFiles, "ui/layout.html", "ui/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("console page %s: %w", p, err)
		}
		pages[p] = t
	}
	return pages, nil
}

// consoleView is what every page's layout reads, plus the page's own data.
type consoleView struct {
	Title, Page, File string
	Status            runtime.Status
	Catalog           []catalogView
	Entities          []entityView
	Types             []string
	DeadLetters       []deadLetterEntry
	Error             string
	// Next is where the login page goes once logged in; LoggedIn shows
	// the log-out button (the console's cookie is set).
	Next     string
	LoggedIn bool
}

type catalogView struct {
	Type, Version, Description, Schema string
}

type entityView struct {
	Name, Diagram string
	// SVG is the diagram drawn.
	SVG template.HTML
}

// consoleEndpoints serves the console's pages, its static files and the
// live tail's server-sent events.
func (sc *Sidecar) consoleEndpoints(mux *http.ServeMux) {
	pages, err := parseConsole()
	if err != nil {
		// The templates are embedded: a parse error is a programmer's
		// mistake that every test shows.
		panic(err)
	}
	static, _ := fs.Sub(consoleFiles, "ui/static")
	render := func(w http.ResponseWriter, r *http.Request, v consoleView) {
		v.File = sc.Config.File
		if c, err := r.Cookie(consoleCookie); err == nil && c.Value != "" {
			v.LoggedIn = true
		}
		var buf bytes.Buffer
		if err := pages[v.Page].ExecuteTemplate(&buf, "layout", v); err != nil {
			http.Error(w, "render console page "+v.Page+": "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		_, _ = w.Write(buf.Bytes())
	}
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		render(w, r, consoleView{Title: "Overview", Page: "overview", Status: sc.Runtime.Status()})
	})
	mux.HandleFunc("GET /ui/catalog", func(w http.ResponseWriter, r *http.Request) {
		render(w, r, consoleView{Title: "Catalog", Page: "catalog", Catalog: sc.catalogViews(), Entities: sc.entityViews()})
	})
	mux.HandleFunc("GET /ui/tail", func(w http.ResponseWriter, r *http.Request) {
		render(w, r, consoleView{Title: "Live tail", Page: "tail", Types: knownTypes(sc.running())})
	})
	mux.HandleFunc("GET /ui/login", func(w http.ResponseWriter, r *http.Request) {
		if len(sc.Config.Admin.Tokens) == 0 {
			// No tokens: the console is open to whoever reaches it.
			http.Redirect(w, r, "/ui", http.StatusSeeOther)
			return
		}
		q := r.URL.Query()
		render(w, r, consoleView{Title: "Log in", Page: "login", Next: q.Get("next"), Error: q.Get("error")})
	})
	// POST /ui/login and /ui/logout are served before the tokens are
	// checked (consolelogin.go); the mux answers them only on a listener
	// without tokens, where there is nothing to log in to.
	mux.HandleFunc("POST /ui/login", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /ui/logout", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui", http.StatusSeeOther)
	})
	d := &deadLetterDesk{sc: sc}
	mux.HandleFunc("GET /ui/deadletters", func(w http.ResponseWriter, r *http.Request) {
		v := consoleView{Title: "Dead letters", Page: "deadletters"}
		all, err := d.read(r.Context())
		if err != nil {
			v.Error = err.Error()
		}
		v.DeadLetters, _ = deadLetterQuery{}.match(all, time.Now())
		slices.Reverse(v.DeadLetters)
		render(w, r, v)
	})
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /ui/events", sc.tailEvents)
}

func (sc *Sidecar) catalogViews() []catalogView {
	var out []catalogView
	cfg := sc.running()
	for _, et := range cfg.Catalog {
		v := catalogView{Type: et.Type, Version: et.Version, Description: et.Description}
		switch {
		case et.Schema != nil:
			b, err := json.MarshalIndent(et.Schema, "", "  ")
			if err != nil {
				b = []byte(err.Error())
			}
			v.Schema = string(b)
		case et.SchemaFile != "":
			p := et.SchemaFile
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(cfg.File), p)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				b = []byte(err.Error())
			}
			v.Schema = string(b)
		}
		out = append(out, v)
	}
	return out
}

func (sc *Sidecar) entityViews() []entityView {
	var out []entityView
	// Entities change only with a restart: the tracker runs these.
	for _, m := range sc.Config.Compiled.Lifecycle {
		var b strings.Builder
		if err := lifecycle.WriteGraph(&b, m.Entity, lifecycle.FormatMermaid); err != nil {
			b.WriteString(err.Error())
		}
		out = append(out, entityView{Name: m.Entity.Name, Diagram: b.String(), SVG: stateDiagram(m.Entity)})
	}
	return out
}

// tailEvents streams the events published from now on, of the types the
// query's type parameters name (every known type without one), as
// server-sent events named cloudevent, one structured CloudEvent each.
func (sc *Sidecar) tailEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "this connection cannot stream", http.StatusInternalServerError)
		return
	}
	types := r.URL.Query()["type"]
	types = slices.DeleteFunc(types, func(s string) bool { return s == "" })
	topics, err := tailTopics(sc.running(), tailOptions{types: types})
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if sc.Stream == nil || sc.Runtime.Status().Stream.State != runtime.StateRunning {
		writeError(w, errStreamDown)
		return
	}
	sub, err := sc.Stream.Subscriber(core.SubscribeOptions{From: core.FromEnd})
	if err != nil {
		writeError(w, fmt.Errorf("subscribe: %w", err))
		return
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	merged, err := mergeTopics(ctx, sub.Subscribe, topics)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, ": following\n\n")
	flusher.Flush()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-keepAlive.C:
			_, _ = fmt.Fprint(w, ": keep-alive\n\n")
			flusher.Flush()
		case m, ok := <-merged:
			if !ok {
				return
			}
			ev, err := core.EventFromMessage(m)
			m.Ack()
			if err != nil || len(types) > 0 && !slices.Contains(types, ev.Type) {
				continue
			}
			b, err := ev.MarshalStructured()
			if err != nil {
				continue
			}
			if _, err := fmt.Fprintf(w, "event: cloudevent\nid: %s\ndata: %s\n\n", ev.ID, b); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}
