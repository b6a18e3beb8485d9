package erp

import (
	"encoding/xml"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Simulator stands in for the Acme ERP's export service in tests, examples
// and demos: an http.Handler serving GET /{entity}?after=N&limit=M from
// records kept in memory. Serve it with httptest.NewServer.
type Simulator struct {
	mu      sync.Mutex
	seq     uint64
	revs    map[string]int
	records map[string][]Record // by entity, in sequence order
	now     func() time.Time
}

// NewSimulator returns an empty export whose records are stamped with now.
func NewSimulator(now func() time.Time) *Simulator {
	if now == nil {
		now = time.Now
	}
	return &Simulator{revs: map[string]int{}, records: map[string][]Record{}, now: now}
}

// Put creates or updates the record key of entity with fields and returns
// its sequence.
func (s *Simulator) Put(entity, key string, fields map[string]string) uint64 {
	return s.add(entity, key, false, fields)
}

// Delete records the deletion of key and returns its sequence.
func (s *Simulator) Delete(entity, key string) uint64 {
	return s.add(entity, key, true, nil)
}

func (s *Simulator) add(entity, key string, deleted bool, fields map[string]string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.revs[entity+"/"+key]++
	r := Record{Seq: s.seq, Key: key, Rev: s.revs[entity+"/"+key], Deleted: deleted, Changed: s.now().UTC().Truncate(time.Second)}
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		r.Fields = append(r.Fields, Field{Name: n, Value: fields[n]})
	}
	s.records[entity] = append(s.records[entity], r)
	return s.seq
}

// ServeHTTP answers GET /{entity}?after=N&limit=M with an <export>.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	entity := strings.Trim(r.URL.Path, "/")
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit <= 0 {
		limit = 100
	}
	s.mu.Lock()
	exp := Export{Entity: entity}
	for _, rec := range s.records[entity] {
		if rec.Seq > after && len(exp.Records) < limit {
			exp.Records = append(exp.Records, rec)
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/xml")
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(exp)
}
