package webhook

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
const preparseBytes = 8 << 20

// redactedHeaders never reach the change's meta: they carry credentials.
var redactedHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie"}

func (h *handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	defer func() { h.m.latency.Observe(time.Since(start).Seconds()) }()
	cfg := &h.s.cfg

	if cfg.Handshake != nil && (req.Method == http.MethodGet || req.Method == http.MethodHead) {
		if reply, ok := cfg.Handshake(&Request{HTTP: req}); ok {
			h.reply(w, reply)
			return
		}
	}
	if !slices.Contains(cfg.Methods, req.Method) {
		w.Header().Set("Allow", strings.Join(cfg.Methods, ", "))
		h.reject(w, http.StatusMethodNotAllowed, ReasonMethod, "method "+req.Method+" not allowed; use "+strings.Join(cfg.Methods, " or "))
		return
	}
	if req.ContentLength > cfg.MaxBodyBytes {
		h.reject(w, http.StatusRequestEntityTooLarge, ReasonTooLarge, "body larger than "+strconv.FormatInt(cfg.MaxBodyBytes, 10)+" bytes")
		return
	}
	body, err := readBody(w, req, cfg.MaxBodyBytes)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.reject(w, http.StatusRequestEntityTooLarge, ReasonTooLarge, "body larger than "+strconv.FormatInt(cfg.MaxBodyBytes, 10)+" bytes")
			return
		}
		h.reject(w, http.StatusBadRequest, ReasonBadBody, "read body: "+err.Error())
		return
	}
	if cfg.Verifier != nil {
		if err := cfg.Verifier.Verify(req, body); err != nil {
			h.r.log.Debug("webhook delivery not verified", "path", req.URL.Path, "remote_addr", req.RemoteAddr, "error", err)
			h.reject(w, http.StatusUnauthorized, ReasonSignature, "delivery not verified")
			return
		}
	}
	hr := &Request{HTTP: req, Body: body}
	if len(body) > 0 {
		ct := req.Header.Get("Content-Type")
		hr.MediaType = MediaType(ct)
		if ct == "" {
			hr.MediaType = "application/json"
		}
		if !h.typeAllowed(hr.MediaType) {
			h.reject(w, http.StatusUnsupportedMediaType, ReasonUnsupportedType, "content type "+strconv.Quote(ct)+" not accepted; use one of "+strings.Join(cfg.ContentTypes, ", "))
			return
		}
		if KindOf(hr.MediaType) == KindJSON && h.r.pendingB.Load() >= preparseBytes {
			// The reader is behind: only check the syntax now and leave
			// building the payload to Read, so that a backlog holds raw
			// bodies rather than their (several times larger) trees.
			err = ValidateBody(hr.MediaType, body)
		} else {
			// Build the payload here, on the request's goroutine, in
			// parallel with other requests, rather than on Read's single
			// goroutine.
			_, err = hr.Payload()
		}
		if err != nil {
			h.reject(w, http.StatusBadRequest, ReasonBadBody, err.Error())
			return
		}
	}
	if cfg.Handshake != nil && req.Method != http.MethodGet && req.Method != http.MethodHead {
		if reply, ok := cfg.Handshake(hr); ok {
			h.reply(w, reply)
			return
		}
	}
	id := ""
	if cfg.DeliveryID != nil {
		id = cfg.DeliveryID(hr)
	}
	switch {
	case id == "":
		id = bodyID(body)
	case len(id) > maxIDLen:
		id = bodyID([]byte(id))
	}
	size := int64(len(body))
	if !h.r.reserve(size, cfg.MaxPending, cfg.MaxPendingBytes) {
		h.retryLater(w, ReasonBackpressure, "inbox full; retry later")
		return
	}
	rec := &record{
		id:       id,
		received: cfg.Now().UTC(),
		body:     body,
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
	if hr.parsed {
		rec.payload, rec.parsed = hr.payload, true
	}
	dup, err := h.r.ib.submit(req.Context(), rec)
	if err != nil || dup {
		h.r.release(size)
	}
	switch {
	case err != nil:
		if !errors.Is(err, ErrClosed) {
			h.r.log.Error("store webhook delivery", "delivery_id", id, "error", err)
		}
		h.retryLater(w, ReasonUnavailable, "delivery not stored; retry later")
	case dup:
		h.m.duplicates.Inc()
		if seq, pending := h.r.pendingSeq(id); pending {
			// AckStream: the first copy is stored but not on the stream
			// yet; this retry waits for it as the first did.
			h.awaitStream(w, req, id, seq, "duplicate")
			return
		}
		writeJSON(w, http.StatusOK, response{Status: "duplicate", DeliveryID: id})
	case h.r.streamAck:
		h.m.accepted.Inc()
		h.awaitStream(w, req, id, rec.seq, "delivered")
	default:
		h.m.accepted.Inc()
		writeJSON(w, http.StatusOK, response{Status: "accepted", DeliveryID: id})
	}
}

// awaitStream answers 200 once the delivery at seq is on the stream, and
// 503 with Retry-After when that takes longer than AckTimeout.
func (h *handler) awaitStream(w http.ResponseWriter, req *http.Request, id string, seq uint64, status string) {
	err := h.r.waitAck(req.Context(), seq, h.s.cfg.AckTimeout)
	if err != nil {
		h.retryLater(w, ReasonAckTimeout, "delivery stored but not yet on the stream; retry later")
		return
	}
	writeJSON(w, http.StatusOK, response{Status: status, DeliveryID: id})
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

func (h *handler) pathValues(req *http.Request) map[string]string {
	if len(h.s.pathParams) == 0 {
		return nil
	}
	out := make(map[string]string, len(h.s.pathParams))
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
	b := make([]byte, 0, 64+len(v.DeliveryID)+len(v.Error))
	b = append(b, '{')
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
	hd := w.Header()
	hd["Content-Type"] = []string{"application/json"}
	hd["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func headerMap(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		if len(vs) == 0 || slices.Contains(redactedHeaders, k) {
			continue
		}
		out[k] = vs[0]
	}
	return out
}

func queryMap(req *http.Request) map[string]string {
	if req.URL.RawQuery == "" {
		return nil
	}
	q := req.URL.Query()
	out := make(map[string]string, len(q))
	for k, vs := range q {
		if len(vs) > 0 {
			out[k] = vs[0]
		}
	}
	return out
}
