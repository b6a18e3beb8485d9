package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

// Dead-letter statuses: open until an operator retries or drops it.
const (
	deadLetterOpen    = "open"
	deadLetterRetried = "retried"
	deadLetterDropped = "dropped"
)

// deadLetterEntry is one dead letter as the admin API shows it: the record
// of the dead-letter topic, its id and time, and what operators did with it.
type deadLetterEntry struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time,omitzero"`
	runtime.DeadLetter
	Status string            `json:"status"`
	Action *deadLetterAction `json:"action,omitempty"`
}

// deadLetterAction is what an operator did with a dead letter, kept in the
// state directory so that a dropped or retried one stays so across
// restarts (the stream itself is append-only).
type deadLetterAction struct {
	Action string    `json:"action"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	// Events are the ids of the events a retry published, or the replay's
	// count for a sink's dead letter.
	Events []string `json:"events,omitempty"`
}

// deadLetterQuery chooses dead letters: by ids, or by the other fields
// (all of those given must match). Status defaults to open.
type deadLetterQuery struct {
	IDs       []string `json:"ids,omitempty"`
	Connector string   `json:"connector,omitempty"`
	Sink      string   `json:"sink,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	EventType string   `json:"event_type,omitempty"`
	Status    string   `json:"status,omitempty"`
	Since     string   `json:"since,omitempty"`
	Until     string   `json:"until,omitempty"`
	Limit     int      `json:"limit,omitempty"`
}

// deadLetterDesk serves /v1/deadletters: it reads the stream's dead-letter
// topic and keeps operators' actions in STATE_DIR/admin/deadletters.json.
type deadLetterDesk struct {
	sc *Sidecar
	mu sync.Mutex // serialises actions and their file
}

func (sc *Sidecar) deadLetterEndpoints(mux *http.ServeMux) {
	d := &deadLetterDesk{sc: sc}
	mux.HandleFunc("GET /v1/deadletters", d.list)
	mux.HandleFunc("GET /v1/deadletters/{id}", d.show)
	mux.HandleFunc("POST /v1/deadletters/{id}/retry", d.actOne("retry"))
	mux.HandleFunc("POST /v1/deadletters/{id}/drop", d.actOne("drop"))
	mux.HandleFunc("POST /v1/deadletters/retry", d.actMany("retry"))
	mux.HandleFunc("POST /v1/deadletters/drop", d.actMany("drop"))
}

func (d *deadLetterDesk) actionsFile() string {
	return filepath.Join(d.sc.Config.StateDir, "admin", "deadletters.json")
}

func (d *deadLetterDesk) loadActions() (map[string]deadLetterAction, error) {
	b, err := os.ReadFile(d.actionsFile())
	if errors.Is(err, os.ErrNotExist) {
		return map[string]deadLetterAction{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dead-letter actions: %w", err)
	}
	m := map[string]deadLetterAction{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read dead-letter actions %s: %w (move the file away to start afresh)", d.actionsFile(), err)
	}
	return m, nil
}

func (d *deadLetterDesk) saveActions(m map[string]deadLetterAction) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(d.actionsFile()), 0o755); err != nil {
		return fmt.Errorf("save dead-letter actions: %w", err)
	}
	tmp := d.actionsFile() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("save dead-letter actions: %w", err)
	}
	if err := os.Rename(tmp, d.actionsFile()); err != nil {
		return fmt.Errorf("save dead-letter actions: %w", err)
	}
	return nil
}

// read returns every dead letter the stream holds, oldest first, with
// operators' actions applied. A read of the stored messages that races a
// publish to the topic may not see its end (the embedded stream's
// SubscribeStored), so each attempt is bounded and tried again.
func (d *deadLetterDesk) read(ctx context.Context) ([]deadLetterEntry, error) {
	if st := d.sc.Runtime.Status().Stream; st.State != runtime.StateRunning || d.sc.Stream == nil {
		return nil, errStreamDown
	}
	var err error
	for range 5 {
		var out []deadLetterEntry
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		out, err = d.readOnce(actx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return out, err
		}
	}
	return nil, err
}

func (d *deadLetterDesk) readOnce(ctx context.Context) ([]deadLetterEntry, error) {
	sub, err := d.sc.Stream.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	defer sub.Close()
	ss, ok := sub.(storedSubscriber)
	if !ok {
		return nil, fmt.Errorf("read dead letters: the %s stream cannot tell where its stored messages end", d.sc.Config.Stream.Type)
	}
	msgs, err := ss.SubscribeStored(ctx, d.sc.Config.Stream.DeadLetterTopic)
	if err != nil {
		return nil, fmt.Errorf("read dead-letter topic %q: %w", d.sc.Config.Stream.DeadLetterTopic, err)
	}
	actions, err := d.loadActions()
	if err != nil {
		return nil, err
	}
	var out []deadLetterEntry
	for m := range msgs {
		e, ok := deadLetterOf(m)
		m.Ack()
		if !ok {
			continue
		}
		e.Status = deadLetterOpen
		if a, ok := actions[e.ID]; ok {
			e.Status, e.Action = statusOf(a.Action), &a
		}
		out = append(out, e)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("read dead-letter topic %q: %w", d.sc.Config.Stream.DeadLetterTopic, ctx.Err())
	}
	return out, nil
}

var errStreamDown = errors.New("the stream is not running, so its dead-letter topic and checkpoints cannot be read; see GET /readyz")

func statusOf(action string) string {
	if action == "drop" {
		return deadLetterDropped
	}
	return deadLetterRetried
}

func deadLetterOf(m *message.Message) (deadLetterEntry, bool) {
	ev, err := core.EventFromMessage(m)
	if err != nil || ev.Type != runtime.DeadLetterType {
		return deadLetterEntry{}, false
	}
	e := deadLetterEntry{ID: ev.ID, Time: ev.Time}
	if err := json.Unmarshal(ev.Data, &e.DeadLetter); err != nil {
		return deadLetterEntry{}, false
	}
	return e, true
}

// match returns the entries q chooses.
func (q deadLetterQuery) match(all []deadLetterEntry, now time.Time) ([]deadLetterEntry, error) {
	f, err := replayFilter(q.Since, q.Until, nil, "", now)
	if err != nil {
		return nil, err
	}
	status := q.Status
	if status == "" && len(q.IDs) == 0 {
		status = deadLetterOpen
	}
	if status != "" && status != "all" && !slices.Contains([]string{deadLetterOpen, deadLetterRetried, deadLetterDropped}, status) {
		return nil, fmt.Errorf("status %q: use open, retried, dropped or all", status)
	}
	var out []deadLetterEntry
	for _, e := range all {
		switch {
		case len(q.IDs) > 0 && !slices.Contains(q.IDs, e.ID),
			q.Connector != "" && e.Connector != q.Connector,
			q.Sink != "" && e.Sink != q.Sink,
			q.Reason != "" && e.Reason != q.Reason,
			q.EventType != "" && e.EventType != q.EventType && eventTypeOf(e) != q.EventType,
			status != "" && status != "all" && e.Status != status,
			!f.Since.IsZero() && e.Time.Before(f.Since),
			!f.Until.IsZero() && !e.Time.Before(f.Until):
			continue
		}
		out = append(out, e)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

// eventTypeOf is the type of a sink's dead letter's event.
func eventTypeOf(e deadLetterEntry) string {
	var ev struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(e.Event, &ev)
	return ev.Type
}

func (d *deadLetterDesk) list(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := deadLetterQuery{Connector: v.Get("connector"), Sink: v.Get("sink"), Reason: v.Get("reason"), EventType: v.Get("type"),
		Status: v.Get("status"), Since: v.Get("since"), Until: v.Get("until")}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit " + strconv.Quote(l) + ": not a count; give a whole number such as 50"})
			return
		}
		q.Limit = n
	}
	all, err := d.read(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	got, err := q.match(all, time.Now())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if got == nil {
		got = []deadLetterEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": got, "count": len(got)})
}

func (d *deadLetterDesk) show(w http.ResponseWriter, r *http.Request) {
	all, err := d.read(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	for _, e := range all {
		if e.ID == r.PathValue("id") {
			writeJSON(w, http.StatusOK, e)
			return
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "no dead letter with id " + r.PathValue("id") + " on topic " + d.sc.Config.Stream.DeadLetterTopic + "; list them with GET /v1/deadletters?status=all"})
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, errStreamDown) {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// deadLetterResult is the outcome of an action on one dead letter.
type deadLetterResult struct {
	ID     string   `json:"id"`
	Status string   `json:"status"`
	Events []string `json:"events,omitempty"`
	Error  string   `json:"error,omitempty"`
}

func (d *deadLetterDesk) actOne(verb string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !loopbackOnly(w, r, verb) {
			return
		}
		d.act(w, r, verb, deadLetterQuery{IDs: []string{r.PathValue("id")}})
	}
}

func (d *deadLetterDesk) actMany(verb string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !loopbackOnly(w, r, verb) {
			return
		}
		var q deadLetterQuery
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&q); err != nil && !errors.Is(err, io.EOF) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": verb + " body: " + err.Error() + `; send {"ids": [...]} or filters such as {"connector": "shop", "reason": "schema_violation"}`})
			return
		}
		d.act(w, r, verb, q)
	}
}

// act retries or drops the dead letters q chooses, records each in the
// actions file and the log with who asked, and answers with each outcome:
// 200 when all succeeded, 207 when some did not, 404 when q chose none
// (for ids), 422 when a single one could not be retried.
func (d *deadLetterDesk) act(w http.ResponseWriter, r *http.Request, verb string, q deadLetterQuery) {
	all, err := d.read(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	chosen, err := q.match(all, time.Now())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if len(chosen) == 0 {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no dead letter matches; list them with GET /v1/deadletters?status=all"})
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	actions, err := d.loadActions()
	if err != nil {
		writeError(w, err)
		return
	}
	who := actor(r)
	var results []deadLetterResult
	failed := 0
	for _, e := range chosen {
		res := deadLetterResult{ID: e.ID}
		if verb == "drop" {
			res.Status = deadLetterDropped
		} else {
			res.Events, err = d.retry(r.Context(), e, who)
			res.Status = deadLetterRetried
			if err != nil {
				res.Status, res.Error = e.Status, err.Error()
				failed++
				d.sc.Logger.Warn("dead letter retry failed", "id", e.ID, "by", who, "err", err)
				results = append(results, res)
				continue
			}
		}
		actions[e.ID] = deadLetterAction{Action: verb, By: who, At: time.Now().UTC(), Events: res.Events}
		d.sc.Logger.Info("dead letter "+res.Status, "id", e.ID, "connector", e.Connector, "sink", e.Sink, "reason", e.Reason, "by", who)
		results = append(results, res)
	}
	if err := d.saveActions(actions); err != nil {
		writeError(w, err)
		return
	}
	code := http.StatusOK
	switch {
	case failed == len(results) && len(results) == 1:
		code = http.StatusUnprocessableEntity
	case failed > 0:
		code = http.StatusMultiStatus
	}
	writeJSON(w, code, map[string]any{"results": results})
}

// retry sends a dead letter through again: a connector's change through
// its rule (as the configuration now has it) and the catalog, published
// to the stream; a sink's event through the sink, as a replay of that
// event. It returns the ids of the events published.
func (d *deadLetterDesk) retry(ctx context.Context, e deadLetterEntry, who string) ([]string, error) {
	switch {
	case e.Sink != "":
		return d.retrySink(ctx, e, who)
	case e.Connector != "":
		return d.retryChange(e)
	}
	return nil, errors.New("the dead letter names neither a connector nor a sink, so there is nothing to send it through")
}

func (d *deadLetterDesk) retryChange(e deadLetterEntry) ([]string, error) {
	if len(e.Change) == 0 {
		return nil, errors.New("the dead letter carries no change to map again")
	}
	if e.Reason == runtime.ReasonInvalidRecord {
		return nil, fmt.Errorf("the change is an unreadable record (%s); no rule can map it: fix the source and let it send the record again", e.Error)
	}
	set := d.sc.rules(e.Connector) // the rules reloaded last
	if set == nil {
		return nil, fmt.Errorf("connector %q is not in %s any more", e.Connector, d.sc.Config.File)
	}
	ch, err := changeOf(e.Change)
	if err != nil {
		return nil, err
	}
	var events []*core.Event
	for _, o := range runtime.Rules(set).Map(ch) {
		if e.Rule != "" && o.Rule != e.Rule {
			continue
		}
		if o.Err != nil {
			return nil, fmt.Errorf("rule %q of connector %q still fails (%s): %w", o.Rule, e.Connector, o.Reason, o.Err)
		}
		if o.Event != nil {
			events = append(events, o.Event)
		}
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("rule %q of connector %q yields no event for this change now", e.Rule, e.Connector)
	}
	topics := runtime.Topics{Mode: d.sc.Config.Stream.Topics.Mode, Prefix: d.sc.Config.Stream.Topics.Prefix, Name: d.sc.Config.Stream.Topics.Name}
	var ids []string
	for _, ev := range events {
		if err := d.sc.Stream.Publisher().Publish(topics.For(ev.Type), ev.ToMessage()); err != nil {
			return ids, fmt.Errorf("publish %s: %w", ev.Type, err)
		}
		ids = append(ids, ev.ID)
	}
	return ids, nil
}

// changeOf decodes a change as core.Change.MarshalRaw wrote it, numbers
// kept exact.
func changeOf(b []byte) (*core.Change, error) {
	var ch core.Change
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&ch); err != nil {
		return nil, fmt.Errorf("decode the dead letter's change: %w", err)
	}
	var raw struct {
		Raw   json.RawMessage `json:"raw"`
		Raw64 []byte          `json:"raw_base64"`
	}
	if err := json.Unmarshal(b, &raw); err == nil {
		ch.Raw = raw.Raw64
		if len(raw.Raw) > 0 {
			ch.Raw = raw.Raw
		}
	}
	return &ch, nil
}

func (d *deadLetterDesk) retrySink(ctx context.Context, e deadLetterEntry, who string) ([]string, error) {
	var ev core.Event
	if err := json.Unmarshal(e.Event, &ev); err != nil || ev.Type == "" {
		return nil, fmt.Errorf("the dead letter of sink %q carries no event to deliver again", e.Sink)
	}
	if ev.Time.IsZero() {
		return nil, fmt.Errorf("event %s has no time, so a replay cannot choose it alone", ev.ID)
	}
	f := runtime.ReplayFilter{Types: []string{ev.Type}, Subject: ev.Subject, Since: ev.Time, Until: ev.Time.Add(time.Microsecond)}
	rep, _, err := d.sc.Replay(ctx, e.Sink, f, who, nil)
	if err != nil {
		return nil, fmt.Errorf("replay event %s to sink %q: %w", ev.ID, e.Sink, err)
	}
	if rep.Count == 0 {
		return nil, fmt.Errorf("sink %q delivered nothing: the stream and the audit log no longer hold event %s, or the sink leaves it out (%d dead-lettered again)", e.Sink, ev.ID, rep.DeadLettered)
	}
	return []string{ev.ID}, nil
}
