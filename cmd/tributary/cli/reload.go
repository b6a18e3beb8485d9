package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/lifecycle"
	"github.com/tributary/tributary/core/rules"
	"github.com/tributary/tributary/core/runtime"
)

// A reload reads the configuration file again, checks it as `validate`
// does and, when it is valid, restarts only the connectors and sinks
// whose configuration changed (added, removed or changed), leaving the
// others running. An invalid file changes nothing: the problems are in
// the answer, the log and the status's last_reload.

// The results of a reload.
const (
	ReloadApplied   = "applied"   // the changes were applied
	ReloadUnchanged = "unchanged" // no connector or sink changed
	ReloadInvalid   = "invalid"   // the file has problems; nothing changed
	ReloadFailed    = "failed"    // the file is valid but a change could not be applied
)

// ReloadReport is what a reload did.
type ReloadReport struct {
	Time time.Time `json:"time"`
	// Result is applied, unchanged, invalid or failed.
	Result string `json:"result"`
	// By is who asked: "signal:SIGHUP", a token's holder or an address.
	By string `json:"by"`
	// Problems are the file's problems (invalid), or the error that
	// stopped the change (failed).
	Problems   []config.Problem `json:"problems,omitempty"`
	Connectors ReloadChanges    `json:"connectors"`
	Sinks      ReloadChanges    `json:"sinks"`
	// NeedsRestart lists the changed sections a reload does not apply
	// (stream, admin, http, state_dir, log, shutdown, entities): they
	// take effect when the sidecar restarts.
	NeedsRestart []string `json:"needs_restart,omitempty"`
	// Catalog says the catalog changed: every connector was restarted
	// with rules checked against the new one, and, with topics per type,
	// every sink, to read the topics of new types.
	Catalog bool `json:"catalog_changed,omitempty"`
}

// ReloadChanges names the connectors or sinks a reload added, removed
// and changed (stopped and started again).
type ReloadChanges struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Changed []string `json:"changed"`
}

// reloadState is the configuration a sidecar runs (the file as last
// loaded successfully) and the last reload's report.
type reloadState struct {
	reg *core.Registry
	// run serializes reloads.
	run  sync.Mutex
	mu   sync.Mutex
	cfg  *config.Config
	last *ReloadReport
}

// LastReload returns the last reload's report, or nil when there was
// none.
func (sc *Sidecar) LastReload() *ReloadReport {
	sc.reload.mu.Lock()
	defer sc.reload.mu.Unlock()
	return sc.reload.last
}

// running returns the configuration the sidecar runs: the file as last
// reloaded, or Config.
func (sc *Sidecar) running() *config.Config {
	sc.reload.mu.Lock()
	defer sc.reload.mu.Unlock()
	if sc.reload.cfg != nil {
		return sc.reload.cfg
	}
	return sc.Config
}

// rules returns the named connector's compiled rules in the configuration
// the sidecar runs (the last one reloaded).
func (sc *Sidecar) rules(connector string) *rules.Set {
	return sc.running().Compiled.Rules[connector]
}

// Reload reads the configuration file again and applies it (see
// ReloadReport). by names who asked, for the log and the report. It
// returns the report, also kept as LastReload.
func (sc *Sidecar) Reload(ctx context.Context, by string) ReloadReport {
	sc.reload.run.Lock()
	defer sc.reload.run.Unlock()
	rep := sc.reloadOnce(ctx, by)
	sc.reload.mu.Lock()
	sc.reload.last = &rep
	sc.reload.mu.Unlock()
	args := []any{"by", by, "result", rep.Result,
		"connectors_added", rep.Connectors.Added, "connectors_removed", rep.Connectors.Removed, "connectors_changed", rep.Connectors.Changed,
		"sinks_added", rep.Sinks.Added, "sinks_removed", rep.Sinks.Removed, "sinks_changed", rep.Sinks.Changed}
	if len(rep.NeedsRestart) > 0 {
		args = append(args, "needs_restart", rep.NeedsRestart)
	}
	switch rep.Result {
	case ReloadInvalid, ReloadFailed:
		probs := make([]string, len(rep.Problems))
		for i, p := range rep.Problems {
			probs[i] = p.String()
		}
		sc.Logger.Error("configuration reload refused; the running configuration stays", append(args, "problems", probs)...)
	default:
		sc.Logger.Info("configuration reloaded", args...)
	}
	return rep
}

func (sc *Sidecar) reloadOnce(ctx context.Context, by string) ReloadReport {
	rep := ReloadReport{Time: time.Now().UTC(), By: by}
	sc.reload.mu.Lock()
	old, reg := sc.reload.cfg, sc.reload.reg
	sc.reload.mu.Unlock()
	if old == nil {
		old = sc.Config
	}
	if reg == nil {
		reg = core.DefaultRegistry
	}
	cfg, err := config.Load(old.File, reg)
	if err != nil {
		rep.Result = ReloadInvalid
		var cerr *config.Error
		if errors.As(err, &cerr) {
			rep.Problems = cerr.Problems
		} else {
			rep.Problems = []config.Problem{{File: old.File, Message: err.Error()}}
		}
		return rep
	}
	for _, w := range cfg.Warnings {
		sc.Logger.Warn(w.Message, "at", w.String())
	}
	rep.NeedsRestart = needsRestart(old, cfg)
	rep.Catalog = catalogDigest(old) != catalogDigest(cfg)

	var u runtime.Update
	for i, cc := range cfg.Connectors {
		j := slices.IndexFunc(old.Connectors, func(o config.ConnectorConfig) bool { return o.Name == cc.Name })
		switch {
		case j < 0:
			rep.Connectors.Added = append(rep.Connectors.Added, cc.Name)
		case !reflect.DeepEqual(old.Connectors[j], cc) || rep.Catalog:
			rep.Connectors.Changed = append(rep.Connectors.Changed, cc.Name)
		default:
			continue
		}
		c, err := buildConnector(cfg, i, reg, sc.Router)
		if err != nil {
			return failed(rep, cfg.File, err)
		}
		u.Connectors = append(u.Connectors, c)
	}
	for _, o := range old.Connectors {
		if !slices.ContainsFunc(cfg.Connectors, func(c config.ConnectorConfig) bool { return c.Name == o.Name }) {
			rep.Connectors.Removed = append(rep.Connectors.Removed, o.Name)
			u.RemoveConnectors = append(u.RemoveConnectors, o.Name)
		}
	}
	for i, s := range cfg.Sinks {
		j := slices.IndexFunc(old.Sinks, func(o config.SinkConfig) bool { return o.Name == s.Name })
		switch {
		case j < 0:
			rep.Sinks.Added = append(rep.Sinks.Added, s.Name)
		case !reflect.DeepEqual(old.Sinks[j], s) || rep.Catalog && cfg.Stream.Topics.Mode == config.TopicsPerType:
			// With a topic per type, a new catalog may add topics a
			// sink reads.
			rep.Sinks.Changed = append(rep.Sinks.Changed, s.Name)
		default:
			continue
		}
		sk, err := buildSink(cfg, i, reg)
		if err != nil {
			return failed(rep, cfg.File, err)
		}
		u.Sinks = append(u.Sinks, sk)
	}
	for _, o := range old.Sinks {
		if !slices.ContainsFunc(cfg.Sinks, func(s config.SinkConfig) bool { return s.Name == o.Name }) {
			rep.Sinks.Removed = append(rep.Sinks.Removed, o.Name)
			u.RemoveSinks = append(u.RemoveSinks, o.Name)
		}
	}
	if rep.Catalog {
		u.EventTypes = knownTypes(cfg)
	}
	if len(u.Connectors)+len(u.RemoveConnectors)+len(u.Sinks)+len(u.RemoveSinks) == 0 {
		rep.Result = ReloadUnchanged
	} else {
		// Run takes the update at once, unless the stream is not open
		// yet.
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := sc.Runtime.Apply(actx, u); err != nil {
			return failed(rep, cfg.File, err)
		}
		rep.Result = ReloadApplied
	}
	sc.reload.mu.Lock()
	sc.reload.cfg = cfg
	sc.reload.mu.Unlock()
	return rep
}

func failed(rep ReloadReport, file string, err error) ReloadReport {
	rep.Result = ReloadFailed
	rep.Problems = []config.Problem{{File: file, Message: err.Error()}}
	return rep
}

// catalogDigest is the catalog as declared, with the content of the
// schema files it names: a schema file edited in place changes it.
func catalogDigest(cfg *config.Config) string {
	h := sha256.New()
	b, _ := json.Marshal(cfg.Catalog)
	h.Write(b)
	for _, et := range cfg.Catalog {
		if et.SchemaFile == "" {
			continue
		}
		p := et.SchemaFile
		if !filepath.IsAbs(p) {
			p = filepath.Join(cfg.Dir, p)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			data = []byte(err.Error())
		}
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// entitiesDigest is the entities section as its state diagrams draw it.
func entitiesDigest(cfg *config.Config) string {
	var b strings.Builder
	for _, m := range cfg.Compiled.Lifecycle {
		if err := lifecycle.WriteGraph(&b, m.Entity, lifecycle.FormatMermaid); err != nil {
			b.WriteString(err.Error())
		}
	}
	return b.String()
}

// needsRestart lists the sections that changed and that only a restart
// applies.
func needsRestart(old, cfg *config.Config) []string {
	var out []string
	for _, s := range []struct {
		name     string
		old, new any
	}{
		{"state_dir", old.StateDir, cfg.StateDir},
		{"log", old.Log, cfg.Log},
		{"admin", old.Admin, cfg.Admin},
		{"http", old.HTTP, cfg.HTTP},
		{"shutdown", old.Shutdown, cfg.Shutdown},
		{"memory", old.Memory, cfg.Memory},
		{"stream", old.Stream, cfg.Stream},
		{"entities", entitiesDigest(old), entitiesDigest(cfg)},
	} {
		if !reflect.DeepEqual(s.old, s.new) {
			out = append(out, s.name)
		}
	}
	if !slices.Contains(out, "entities") && catalogDigest(old) != catalogDigest(cfg) && len(cfg.Compiled.Lifecycle) > 0 {
		// The lifecycle tracker follows the catalog's entities.
		out = append(out, "entities")
	}
	return out
}

// reloadEndpoint serves POST /v1/reload (operators, or loopback without
// tokens): 200 with the report when the file was applied or unchanged,
// 422 when it is invalid, 500 when a change failed.
func (sc *Sidecar) reloadEndpoint(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if !loopbackOnly(w, r, "reload") {
			return
		}
		rep := sc.Reload(r.Context(), actor(r))
		code := http.StatusOK
		switch rep.Result {
		case ReloadInvalid:
			code = http.StatusUnprocessableEntity
		case ReloadFailed:
			code = http.StatusInternalServerError
		}
		writeJSON(w, code, rep)
	})
}

// reloadOnSIGHUP reloads the configuration on every SIGHUP until ctx is
// done.
func (sc *Sidecar) reloadOnSIGHUP(ctx context.Context) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-hup:
				sc.Reload(ctx, "signal:SIGHUP")
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
	})
	return func() {
		signal.Stop(hup)
		close(done)
		wg.Wait()
	}
}

// sidecarStatus is GET /v1/connectors's answer: the runtime's status and
// the last reload.
type sidecarStatus struct {
	runtime.Status
	LastReload *ReloadReport `json:"last_reload,omitempty"`
}

func (sc *Sidecar) status() sidecarStatus {
	return sidecarStatus{Status: sc.Runtime.Status(), LastReload: sc.LastReload()}
}
