package webhook

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/core"
)

// handler serves one run's deliveries.
type handler struct {
	s *Source
	r *run
	m *metrics
}

// response is the JSON body of every answer the handler writes itself.
type response struct {
	Status     string `json:"status,omitempty"`
	DeliveryID string `json:"delivery_id,omitempty"`
	Error      string `json:"error,omitempty"`
}

// preparseBytes is the inbox backlog (body bytes not yet acknowledged) below
// which the handler builds a delivery's payload itself.
const preparseBytes = 1 << 20

// redactedHeaders never reach the change's meta: they carry credentials.
var redactedHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie"}

// ServeHTTP runs a delivery through the checks in the order README.md
// states (method, size, verification, content type, body, handshake,
// backpressure) and stores it; each step that refuses it has answered.
func (h *handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	defer func() { h.m.latency.Observe(time.Since(start).Seconds()) }()
	cfg := &h.s.cfg

	getHandshake := req.Method == http.MethodGet || req.Method == http.MethodHead
	if cfg.Handshake != nil && getHandshake && h.handshake(w, &Request{HTTP: req}) {
		// Senders do not sign GET challenges: answered before verification.
		return
	}
	body, ok := h.readVerified(w, req)
	if !ok {
		return
	}
	hr, ok := h.parse(w, req, body)
	if !ok {
		return
	}
	if cfg.Handshake != nil && !getHandshake && h.handshake(w, hr) {
		return
	}
	size := int64(len(body))
	if h.r.streamAck {
		h.deliver(w, req, h.newRecord(hr, h.deliveryID(hr)), size)
		return
	}
	if !h.r.reserve(size, cfg.MaxPending, cfg.MaxPendingBytes) {
		h.retryLater(w, ReasonBackpressure, "inbox full; retry later")
		return
	}
	h.store(w, req, h.newRecord(hr, h.deliveryID(hr)), size)
}

// handshake answers req when the configured handshake recognises it.
func (h *handler) handshake(w http.ResponseWriter, req *Request) bool {
	reply, ok := h.s.cfg.Handshake(req)
	if ok {
		h.reply(w, reply)
	}
	return ok
}

// readVerified checks the method and size, reads the body and verifies the
// delivery. It answers and returns false when the delivery is refused.
func (h *handler) readVerified(w http.ResponseWriter, req *http.Request) ([]byte, bool) {
	cfg := &h.s.cfg
	if !slices.Contains(cfg.Methods, req.Method) {
		w.Header().Set("Allow", strings.Join(cfg.Methods, ", "))
		h.reject(w, http.StatusMethodNotAllowed, ReasonMethod, "method "+req.Method+" not allowed; use "+strings.Join(cfg.Methods, " or "))
		return nil, false
	}
	if req.ContentLength > cfg.MaxBodyBytes {
		h.reject(w, http.StatusRequestEntityTooLarge, ReasonTooLarge, "body larger than "+strconv.FormatInt(cfg.MaxBodyBytes, 10)+" bytes")
		return nil, false
	}
	body, err := readBody(w, req, cfg.MaxBodyBytes)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.reject(w, http.StatusRequestEntityTooLarge, ReasonTooLarge, "body larger than "+strconv.FormatInt(cfg.MaxBodyBytes, 10)+" bytes")
			return nil, false
		}
		h.reject(w, http.StatusBadRequest, ReasonBadBody, "read body: "+err.Error())
		return nil, false
	}
	if cfg.Verifier != nil {
		if err := cfg.Verifier.Verify(req, body); err != nil {
			h.r.log.Debug("webhook delivery not verified", "path", req.URL.Path, "remote_addr", req.RemoteAddr, "error", err)
			h.reject(w, http.StatusUnauthorized, ReasonSignature, "delivery not verified")
			return nil, false
		}
	}
	return body, true
}

// parse checks a verified body's content type and syntax, building its
// payload while the inbox backlog is small. It answers and returns false
// when the body is refused.
func (h *handler) parse(w http.ResponseWriter, req *http.Request, body []byte) (*Request, bool) {
	hr := &Request{HTTP: req, Body: body}
	if len(body) == 0 {
		return hr, true
	}
	ct := req.Header.Get("Content-Type")
	hr.MediaType = MediaType(ct)
	if ct == "" {
		hr.MediaType = "application/json"
	}
	if !h.typeAllowed(hr.MediaType) {
		h.reject(w, http.StatusUnsupportedMediaType, ReasonUnsupportedType, "content type "+strconv.Quote(ct)+" not accepted; use one of "+strings.Join(h.s.cfg.ContentTypes, ", "))
		return nil, false
	}
	var err error
	if KindOf(hr.MediaType) == KindJSON && h.r.pendingB.Load() >= preparseBytes {
		// The reader is behind: only check the syntax now and leave
		// building the payload to Read, so that a backlog holds raw
		// bodies rather than their (several times larger) trees.
		err = ValidateBody(hr.MediaType, body)
	} else {
		// Build the payload here, on the request's goroutine, in
		// parallel with other requests, rather than on Read's single
		// goroutine: only the parts the rules read, when they are known.
		if tree := h.s.paths.Load(); tree != nil && KindOf(hr.MediaType) == KindJSON && !h.s.cfg.HooksReadPayload {
			var pruned bool
			hr.pruned, pruned, err = parsePayload(hr.MediaType, body, tree)
			if pruned {
				hr.prunedBy = tree
			}
		} else {
			_, err = hr.Payload()
		}
	}
	if err != nil {
		h.reject(w, http.StatusBadRequest, ReasonBadBody, err.Error())
		return nil, false
	}
	return hr, true
}

// deliveryID returns the sender's id of a delivery, else the hash of its
// body; an id too long to store is replaced by its hash.
func (h *handler) deliveryID(hr *Request) string {
	id := ""
	if h.s.cfg.DeliveryID != nil {
		id = h.s.cfg.DeliveryID(hr)
	}
	switch {
	case id == "":
		return bodyID(hr.Body)
	case len(id) > maxIDLen:
		return bodyID([]byte(id))
	}
	return id
}

// newRecord returns the inbox record of a delivery, with its payload when
// parse built it.
func (h *handler) newRecord(hr *Request, id string) *record {
	req := hr.HTTP
	rec := &record{
		id:       id,
		received: h.s.cfg.Now().UTC(),
		body:     hr.Body,
		meta: recordMeta{
			Method:      req.Method,
			Path:        req.URL.Path,
			RemoteAddr:  req.RemoteAddr,
			ContentType: hr.MediaType,
			Headers:     headerMap(req.Header),
			Query:       queryMap(req),
			PathParams:  h.pathValues(req),
		},
	}
	switch {
	case hr.prunedBy != nil:
		rec.payload, rec.parsed, rec.prunedBy = hr.pruned, true, hr.prunedBy
	case hr.parsed:
		rec.payload, rec.parsed = hr.payload, true
	}
	return rec
}

// store submits a delivery whose size is reserved to the inbox and
// answers: accepted, duplicate or retry later.
func (h *handler) store(w http.ResponseWriter, req *http.Request, rec *record, size int64) {
	dup, err := h.r.ib.submit(req.Context(), rec)
	if err != nil || dup {
		h.r.release(size)
	}
	switch {
	case err != nil:
		if !errors.Is(err, ErrClosed) {
			h.r.log.Error("store webhook delivery", "delivery_id", rec.id, "error", err)
		}
		h.retryLater(w, ReasonUnavailable, "delivery not stored; retry later")
	case dup:
		h.m.duplicates.Inc()
		writeJSON(w, http.StatusOK, response{Status: "duplicate", DeliveryID: rec.id})
	default:
		h.m.accepted.Inc()
		writeJSON(w, http.StatusOK, response{Status: "accepted", DeliveryID: rec.id})
	}
}

// deliver hands a delivery to Read in memory (AckStream) and answers once
// the stream acknowledged it: delivered, duplicate (an identical delivery
// was acknowledged, now or within the window) or retry later (not on the
// stream within AckTimeout, the inbox full, or closing).
func (h *handler) deliver(w http.ResponseWriter, req *http.Request, rec *record, size int64) {
	cfg := &h.s.cfg
	fl, adm := h.r.admit(rec, size, cfg.MaxPending, cfg.MaxPendingBytes)
	status := "delivered"
	switch adm {
	case admitDuplicate:
		h.m.duplicates.Inc()
		writeJSON(w, http.StatusOK, response{Status: "duplicate", DeliveryID: rec.id})
		return
	case admitFull:
		h.retryLater(w, ReasonBackpressure, "too many deliveries waiting for the stream; retry later")
		return
	case admitClosed:
		h.retryLater(w, ReasonUnavailable, "closing; retry later")
		return
	case admitFlying:
		// An identical delivery is on its way: this one is answered as
		// it is, and never emitted twice.
		h.m.duplicates.Inc()
		status = "duplicate"
	default:
		h.m.accepted.Inc()
	}
	switch err := h.r.wait(fl, adm == admitted, cfg.AckTimeout, req.Context().Done()); {
	case err == nil:
		writeJSON(w, http.StatusOK, response{Status: status, DeliveryID: rec.id})
	case errors.Is(err, ErrClosed):
		h.retryLater(w, ReasonUnavailable, "closing before the delivery was on the stream; retry later")
	default:
		h.retryLater(w, ReasonAckTimeout, "delivery not on the stream in time; retry later")
	}
}

func (h *handler) typeAllowed(mt string) bool {
	for _, t := range h.s.cfg.ContentTypes {
		if t == mt {
			return true
		}
	}
	switch {
	case strings.HasSuffix(mt, "+json"):
		return slices.Contains(h.s.cfg.ContentTypes, "application/json")
	case strings.HasSuffix(mt, "+xml"):
		return slices.Contains(h.s.cfg.ContentTypes, "application/xml")
	}
	return false
}

func (h *handler) pathValues(req *http.Request) map[string]any {
	if len(h.s.pathParams) == 0 {
		return nil
	}
	out := make(map[string]any, len(h.s.pathParams))
	for _, p := range h.s.pathParams {
		out[p] = req.PathValue(p)
	}
	return out
}

func (h *handler) reject(w http.ResponseWriter, status int, reason, msg string) {
	h.m.rejected[reason].Inc()
	writeJSON(w, status, response{Error: msg})
}

func (h *handler) retryLater(w http.ResponseWriter, reason, msg string) {
	secs := int64((h.s.cfg.RetryAfter + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	h.reject(w, http.StatusServiceUnavailable, reason, msg)
}

func (h *handler) reply(w http.ResponseWriter, r Reply) {
	h.m.handshakes.Inc()
	if r.ContentType != "" {
		w.Header().Set("Content-Type", r.ContentType)
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	status := r.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(r.Body)
}

func writeJSON(w http.ResponseWriter, status int, v response) {
	bp := answers.Get().(*[]byte)
	b := append((*bp)[:0], '{')
	sep := false
	for _, f := range [...]struct{ k, v string }{{"status", v.Status}, {"delivery_id", v.DeliveryID}, {"error", v.Error}} {
		if f.v == "" {
			continue
		}
		if sep {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, f.k...)
		b = append(b, '"', ':')
		b = core.AppendJSONString(b, f.v, true)
		sep = true
	}
	b = append(b, '}', '\n')
	// net/http sets Content-Length itself for a body this small written
	// in one go.
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(b)
	*bp = b
	answers.Put(bp)
}

// jsonContentType is the Content-Type of every answer, shared: net/http
// only reads it.
var jsonContentType = []string{"application/json"}

// answers recycles the buffers answers are encoded in.
var answers = sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}

func headerMap(h http.Header) map[string]any {
	out := make(map[string]any, len(h))
	for k, vs := range h {
		if len(vs) == 0 || slices.Contains(redactedHeaders, k) {
			continue
		}
		out[k] = vs[0]
	}
	return out
}

func queryMap(req *http.Request) map[string]any {
	if req.URL.RawQuery == "" {
		return nil
	}
	q := req.URL.Query()
	out := make(map[string]any, len(q))
	for k, vs := range q {
		if len(vs) > 0 {
			out[k] = vs[0]
		}
	}
	return out
}
