// Package sim plays the legacy systems of the retail example, the way old
// applications behave: an order entry application writing orders to
// PostgreSQL with plain inserts and status updates, a CRM writing new
// customers to MariaDB, a billing system behind a paginated REST API with
// bearer auth and the occasional 429, and a warehouse SaaS that takes
// billed orders on an old REST endpoint and reports picking and shipping
// with signed Standard Webhooks deliveries. None of them knows Tributary or
// each other: the sidecar wraps each one.
package sim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql" // the CRM's MariaDB
	_ "github.com/jackc/pgx/v5/stdlib" // the order entry's PostgreSQL
)

// Config says where the systems live and how the simulated business runs.
type Config struct {
	// PostgresURL is the order entry database (pgx URL).
	PostgresURL string
	// MySQLDSN is the CRM database (go-sql-driver DSN).
	MySQLDSN string
	// Listen is where the billing API and the warehouse's endpoint listen.
	Listen string
	// WebhookURL is where the warehouse posts its deliveries: the
	// sidecar's webhook connector.
	WebhookURL string
	// WebhookSecret is the warehouse's Standard Webhooks signing secret
	// (whsec_...).
	WebhookSecret string
	// BillingToken is the bearer token the billing API takes.
	BillingToken string
	// Prefix starts every order, customer and invoice id, so that runs do
	// not collide in shared databases.
	Prefix string
	// Orders is how many orders Run places; Interval the pause between
	// two. A new customer is registered for every CustomerEvery-th order.
	Orders        int
	Interval      time.Duration
	CustomerEvery int
	// CancelEvery cancels every CancelEvery-th order before it is billed;
	// 0 cancels none.
	CancelEvery int
	// BillAfter, PickAfter and ShipAfter are how long billing takes to
	// invoice an order, and the warehouse to pick and to ship it once it
	// received the billing.
	BillAfter, PickAfter, ShipAfter time.Duration
	// ThrottleEvery answers every ThrottleEvery-th billing request 429;
	// 0 never.
	ThrottleEvery int
	Logger        *slog.Logger
}

// Sim is a running simulation.
type Sim struct {
	cfg       Config
	pg, my    *sql.DB
	billing   *billing
	warehouse *warehouse
	srv       *http.Server
	ln        net.Listener
	wg        sync.WaitGroup
}

// Start creates the legacy tables when missing and starts the billing API
// and the warehouse endpoint. Close stops them.
func Start(ctx context.Context, cfg Config) (*Sim, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CustomerEvery <= 0 {
		cfg.CustomerEvery = 1
	}
	s := &Sim{cfg: cfg}
	var err error
	if s.pg, err = sql.Open("pgx", cfg.PostgresURL); err != nil {
		return nil, fmt.Errorf("order entry database: %w", err)
	}
	if s.my, err = sql.Open("mysql", cfg.MySQLDSN); err != nil {
		_ = s.pg.Close()
		return nil, fmt.Errorf("CRM database: %w", err)
	}
	if err := s.setup(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	s.billing = newBilling(cfg)
	s.warehouse = newWarehouse(cfg)
	mux := http.NewServeMux()
	s.billing.routes(mux)
	s.warehouse.routes(mux)
	if s.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Go(func() {
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("simulator listener", "err", err)
		}
	})
	return s, nil
}

// Addr is where the billing API and the warehouse endpoint listen.
func (s *Sim) Addr() string { return s.ln.Addr().String() }

// setup creates the order entry and CRM tables, as the old applications'
// installers did.
func (s *Sim) setup(ctx context.Context) error {
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS retail_orders (
			id TEXT PRIMARY KEY,
			customer_id TEXT NOT NULL,
			total NUMERIC(12,2) NOT NULL,
			status TEXT NOT NULL,
			created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
			updated_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
		`CREATE TABLE IF NOT EXISTS retail_order_lines (
			order_id TEXT NOT NULL REFERENCES retail_orders (id),
			line INTEGER NOT NULL,
			sku TEXT NOT NULL,
			qty INTEGER NOT NULL,
			PRIMARY KEY (order_id, line))`,
	} {
		if _, err := s.pg.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("order entry database: %w", err)
		}
	}
	q := `CREATE TABLE IF NOT EXISTS crm_customers (
		id VARCHAR(64) PRIMARY KEY,
		name VARCHAR(200) NOT NULL,
		email VARCHAR(200) NOT NULL,
		created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))`
	if _, err := s.my.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("CRM database: %w", err)
	}
	return nil
}

// Run places cfg.Orders orders, one every cfg.Interval, registering new
// customers in the CRM as it goes, and returns the order ids once every
// order is placed (billing and the warehouse go on by themselves).
func (s *Sim) Run(ctx context.Context) ([]string, error) {
	var ids []string
	customer := ""
	for i := 1; i <= s.cfg.Orders; i++ {
		if customer == "" || (i-1)%s.cfg.CustomerEvery == 0 {
			customer = fmt.Sprintf("%scust-%04d", s.cfg.Prefix, i)
			if _, err := s.my.ExecContext(ctx, `INSERT INTO crm_customers (id, name, email) VALUES (?, ?, ?)`,
				customer, fmt.Sprintf("Customer %d", i), fmt.Sprintf("customer%d@example.com", i)); err != nil {
				return ids, fmt.Errorf("register customer %s: %w", customer, err)
			}
		}
		id := fmt.Sprintf("%sord-%04d", s.cfg.Prefix, i)
		total := fmt.Sprintf("%d.%02d", 20+i%180, i%100)
		if err := s.placeOrder(ctx, id, customer, total, i); err != nil {
			return ids, err
		}
		ids = append(ids, id)
		if s.cfg.CancelEvery > 0 && i%s.cfg.CancelEvery == 0 {
			if _, err := s.pg.ExecContext(ctx, `UPDATE retail_orders SET status = 'CANCELLED', updated_at = now() WHERE id = $1`, id); err != nil {
				return ids, fmt.Errorf("cancel order %s: %w", id, err)
			}
		} else {
			s.billing.invoiceLater(ctx, id, customer, total)
		}
		select {
		case <-ctx.Done():
			return ids, ctx.Err()
		case <-time.After(s.cfg.Interval):
		}
	}
	return ids, nil
}

// placeOrder writes an order and its lines in one transaction, as the
// order entry application does.
func (s *Sim) placeOrder(ctx context.Context, id, customer, total string, i int) error {
	tx, err := s.pg.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("place order %s: %w", id, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO retail_orders (id, customer_id, total, status) VALUES ($1, $2, $3, 'NEW')`, id, customer, total); err != nil {
		return fmt.Errorf("place order %s: %w", id, err)
	}
	for line := 1; line <= 1+i%3; line++ {
		if _, err := tx.ExecContext(ctx, `INSERT INTO retail_order_lines (order_id, line, sku, qty) VALUES ($1, $2, $3, $4)`,
			id, line, fmt.Sprintf("SKU-%03d", (i*7+line)%250), 1+line%2); err != nil {
			return fmt.Errorf("place order %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("place order %s: %w", id, err)
	}
	return nil
}

// Picked returns the orders the warehouse received for picking, each
// once, with how many deliveries of it it received.
func (s *Sim) Picked() map[string]int { return s.warehouse.received() }

// Close stops the listener and the timers and closes the databases.
func (s *Sim) Close(ctx context.Context) error {
	s.billing.stop()
	s.warehouse.stop()
	err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	s.closeDBs()
	return err
}

func (s *Sim) closeDBs() {
	_ = s.pg.Close()
	_ = s.my.Close()
}
