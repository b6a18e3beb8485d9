package sim

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// invoice is what the billing API lists.
type invoice struct {
	ID         string `json:"id"`
	OrderID    string `json:"order_id"`
	CustomerID string `json:"customer_id"`
	Amount     string `json:"amount"`
	Currency   string `json:"currency"`
	IssuedAt   string `json:"issued_at"`
}

// billing is the legacy billing system: it invoices each order a while
// after it is placed and lists the invoices at GET /billing/invoices,
// oldest first, `issued_since` (inclusive) and `page` (from 1, 25 a page),
// behind a bearer token, answering 429 now and then.
type billing struct {
	cfg      Config
	mu       sync.Mutex
	invoices []invoice
	requests atomic.Int64
	timers   sync.WaitGroup
	done     chan struct{}
	once     sync.Once
}

const invoicesPerPage = 25

func newBilling(cfg Config) *billing { return &billing{cfg: cfg, done: make(chan struct{})} }

func (b *billing) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /billing/invoices", b.list)
}

// invoiceLater issues the invoice of an order after cfg.BillAfter.
func (b *billing) invoiceLater(ctx context.Context, order, customer, amount string) {
	b.timers.Go(func() {
		select {
		case <-time.After(b.cfg.BillAfter):
		case <-ctx.Done():
			return
		case <-b.done:
			return
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		b.invoices = append(b.invoices, invoice{
			ID: "inv-" + order, OrderID: order, CustomerID: customer, Amount: amount, Currency: "EUR",
			IssuedAt: time.Now().UTC().Format(time.RFC3339Nano),
		})
	})
}

func (b *billing) list(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+b.cfg.BillingToken)) != 1 {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	if n := b.requests.Add(1); b.cfg.ThrottleEvery > 0 && n%int64(b.cfg.ThrottleEvery) == 0 {
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":"too many requests"}`, http.StatusTooManyRequests)
		return
	}
	since := r.URL.Query().Get("issued_since")
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if page < 1 {
		page = 1
	}
	b.mu.Lock()
	var match []invoice
	for _, in := range b.invoices {
		// RFC 3339 times in UTC with nanoseconds sort as text only when
		// their widths agree; compare them as times.
		if since == "" || !issuedBefore(in.IssuedAt, since) {
			match = append(match, in)
		}
	}
	b.mu.Unlock()
	from := min((page-1)*invoicesPerPage, len(match))
	to := min(from+invoicesPerPage, len(match))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"invoices": match[from:to], "page": page})
}

// issuedBefore reports whether time a is before time b (RFC 3339).
func issuedBefore(a, b string) bool {
	ta, err1 := time.Parse(time.RFC3339Nano, a)
	tb, err2 := time.Parse(time.RFC3339Nano, b)
	if err1 != nil || err2 != nil {
		return a < b
	}
	return ta.Before(tb)
}

func (b *billing) stop() {
	b.once.Do(func() { close(b.done) })
	b.timers.Wait()
}
