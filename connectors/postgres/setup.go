package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tributary/tributary/core"
)

// slotInfo is a replication slot's row in pg_replication_slots.
type slotInfo struct {
	exists    bool
	active    bool
	activePID int32
	plugin    string
	database  string
	confirmed pglogrepl.LSN
}

// column is one column of a captured table, from the catalog.
type column struct {
	name string
	// typ is format_type of the column, used in casts.
	typ string
	// pk is the column's 1-based place in the primary key, 0 if none.
	pk int
}

// tableMeta is what the catalog says about a captured table.
type tableMeta struct {
	oid       uint32
	schema    string
	name      string
	replident byte
	cols      []column
	// key lists the key columns' names in key order: the primary key, or
	// the replica identity index.
	key []string
}

func (t *tableMeta) qualified() string { return t.schema + "." + t.name }

func (t *tableMeta) colType(name string) string {
	for _, c := range t.cols {
		if c.name == name {
			return c.typ
		}
	}
	return "text"
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

func (t *tableMeta) sqlName() string { return pgx.Identifier{t.schema, t.name}.Sanitize() }

// connectError classifies a connection failure: bad credentials and a
// missing database are fatal, the rest is retried.
func connectError(what string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01", "28000":
			return core.Fatal(fmt.Errorf("%s: authentication failed (%s): check the user and password in url", what, pe.Message))
		case "3D000":
			return core.Fatal(fmt.Errorf("%s: %s: check the database name in url", what, pe.Message))
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// checkServer verifies wal_level and the role's REPLICATION attribute.
func checkServer(ctx context.Context, pool *pgxpool.Pool) error {
	var walLevel, user string
	var canReplicate bool
	err := pool.QueryRow(ctx, `select current_setting('wal_level'), current_user,
		coalesce((select rolreplication or rolsuper from pg_roles where rolname = current_user), false)`).Scan(&walLevel, &user, &canReplicate)
	if err != nil {
		return fmt.Errorf("read server settings: %w", err)
	}
	var errs []error
	if walLevel != "logical" {
		errs = append(errs, fmt.Errorf("wal_level is %q but logical replication needs \"logical\": run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL", walLevel))
	}
	if !canReplicate {
		errs = append(errs, fmt.Errorf("role %q lacks the REPLICATION attribute: run ALTER ROLE %s WITH REPLICATION", user, ident(user)))
	}
	if len(errs) > 0 {
		return core.Fatal(errors.Join(errs...))
	}
	return nil
}

// ensurePublication creates or verifies the publication and returns the
// captured tables: the listed ones, or every table of the publication.
func ensurePublication(ctx context.Context, pool *pgxpool.Pool, cfg *Config) ([]string, error) {
	var allTables bool
	err := pool.QueryRow(ctx, `select puballtables from pg_publication where pubname = $1`, cfg.Publication).Scan(&allTables)
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("look up publication %q: %w", cfg.Publication, err)
	}
	wanted := make([]string, 0, len(cfg.Tables)+1)
	for _, t := range cfg.Tables {
		wanted = append(wanted, qualified(t))
	}
	if cfg.Outbox.Table != "" {
		wanted = append(wanted, qualified(cfg.Outbox.Table))
	}
	if !exists {
		if cfg.Setup == SetupVerify {
			return nil, core.Fatal(fmt.Errorf("publication %q does not exist and setup is %q: create it (CREATE PUBLICATION %s FOR TABLE ...) or set setup: %s", cfg.Publication, SetupVerify, ident(cfg.Publication), SetupAuto))
		}
		sql := "CREATE PUBLICATION " + ident(cfg.Publication)
		if len(wanted) == 0 {
			sql += " FOR ALL TABLES"
		} else {
			names := make([]string, len(wanted))
			for i, t := range wanted {
				s, n, _ := splitTable(t)
				names[i] = pgx.Identifier{s, n}.Sanitize()
			}
			sql += " FOR TABLE " + strings.Join(names, ", ")
		}
		if _, err := pool.Exec(ctx, sql); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "42710" {
				return ensurePublication(ctx, pool, cfg) // created meanwhile
			}
			return nil, tableError(fmt.Sprintf("create publication %q", cfg.Publication), err)
		}
	} else if !allTables {
		for _, t := range wanted {
			s, n, _ := splitTable(t)
			var in bool
			if err := pool.QueryRow(ctx, `select exists(select 1 from pg_publication_tables where pubname = $1 and schemaname = $2 and tablename = $3)`, cfg.Publication, s, n).Scan(&in); err != nil {
				return nil, fmt.Errorf("read publication %q: %w", cfg.Publication, err)
			}
			if in {
				continue
			}
			if cfg.Setup == SetupVerify {
				return nil, core.Fatal(fmt.Errorf("table %s is not in publication %q: run ALTER PUBLICATION %s ADD TABLE %s", t, cfg.Publication, ident(cfg.Publication), pgx.Identifier{s, n}.Sanitize()))
			}
			if _, err := pool.Exec(ctx, "ALTER PUBLICATION "+ident(cfg.Publication)+" ADD TABLE "+pgx.Identifier{s, n}.Sanitize()); err != nil {
				return nil, tableError(fmt.Sprintf("add table %s to publication %q", t, cfg.Publication), err)
			}
		}
	}
	if len(wanted) > 0 {
		return wanted, nil
	}
	rows, err := pool.Query(ctx, `select schemaname || '.' || tablename from pg_publication_tables where pubname = $1`, cfg.Publication)
	if err != nil {
		return nil, fmt.Errorf("list tables of publication %q: %w", cfg.Publication, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// tableError makes a missing table or a missing privilege fatal.
func tableError(what string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "42P01":
			return core.Fatal(fmt.Errorf("%s: %s: create the table or fix tables in the configuration", what, pe.Message))
		case "42501":
			return core.Fatal(fmt.Errorf("%s: %s: grant the privilege, or have an operator create the publication and set setup: %s", what, pe.Message, SetupVerify))
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// loadTable reads a table's columns, key and replica identity.
func loadTable(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, qualifiedName string) (*tableMeta, error) {
	s, n, err := splitTable(qualifiedName)
	if err != nil {
		return nil, core.Fatal(err)
	}
	t := &tableMeta{schema: s, name: n}
	var ri string
	err = q.QueryRow(ctx, `select c.oid, c.relreplident::text from pg_class c join pg_namespace ns on ns.oid = c.relnamespace
		where ns.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')`, s, n).Scan(&t.oid, &ri)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, core.Fatal(fmt.Errorf("table %s does not exist or the role cannot see it: create it, grant USAGE on its schema, or fix tables in the configuration", qualifiedName))
	}
	if err != nil {
		return nil, fmt.Errorf("look up table %s: %w", qualifiedName, err)
	}
	t.replident = ri[0]
	if err := t.loadColumns(ctx, q); err != nil {
		return nil, err
	}
	return t, nil
}

// loadColumns reads the columns and the key of the table with t.oid.
func (t *tableMeta) loadColumns(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) error {
	rows, err := q.Query(ctx, `select a.attname, format_type(a.atttypid, a.atttypmod),
			coalesce((select k.n from unnest(pk.indkey::int2[]) with ordinality k(a, n) where k.a = a.attnum), 0)::int,
			coalesce((select k.n from unnest(ri.indkey::int2[]) with ordinality k(a, n) where k.a = a.attnum), 0)::int
		from pg_attribute a
		left join pg_index pk on pk.indrelid = a.attrelid and pk.indisprimary
		left join pg_index ri on ri.indrelid = a.attrelid and ri.indisreplident
		where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped order by a.attnum`, t.oid)
	if err != nil {
		return fmt.Errorf("read columns of %s: %w", t.qualified(), err)
	}
	defer rows.Close()
	type keyCol struct {
		name   string
		pk, ri int
	}
	var keys []keyCol
	t.cols = t.cols[:0]
	for rows.Next() {
		var c column
		var ri int
		if err := rows.Scan(&c.name, &c.typ, &c.pk, &ri); err != nil {
			return fmt.Errorf("read columns of %s: %w", t.qualified(), err)
		}
		t.cols = append(t.cols, c)
		if c.pk > 0 || ri > 0 {
			keys = append(keys, keyCol{c.name, c.pk, ri})
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read columns of %s: %w", t.qualified(), err)
	}
	t.key = t.key[:0]
	for _, use := range []func(keyCol) int{func(k keyCol) int { return k.pk }, func(k keyCol) int { return k.ri }} {
		for i := 1; ; i++ {
			found := false
			for _, k := range keys {
				if use(k) == i {
					t.key, found = append(t.key, k.name), true
				}
			}
			if !found {
				break
			}
		}
		if len(t.key) > 0 {
			break
		}
	}
	return nil
}

// checkIdentity reports a table whose updates and deletes PostgreSQL
// cannot replicate.
func (t *tableMeta) checkIdentity() error {
	switch {
	case t.replident == 'n':
		return core.Fatal(fmt.Errorf("table %s has REPLICA IDENTITY NOTHING, so its updates and deletes cannot be captured: run ALTER TABLE %s REPLICA IDENTITY DEFAULT (with a primary key) or FULL", t.qualified(), t.sqlName()))
	case t.replident == 'd' && len(t.key) == 0:
		return core.Fatal(fmt.Errorf("table %s has no primary key and REPLICA IDENTITY DEFAULT, so its updates and deletes cannot be captured: add a primary key or run ALTER TABLE %s REPLICA IDENTITY FULL", t.qualified(), t.sqlName()))
	}
	return nil
}

// readSlot reads the slot's row.
func readSlot(ctx context.Context, pool *pgxpool.Pool, name string) (slotInfo, error) {
	var si slotInfo
	var pid *int32
	var plugin, db *string
	var lsn *string
	err := pool.QueryRow(ctx, `select active, active_pid, plugin, database, confirmed_flush_lsn::text
		from pg_replication_slots where slot_name = $1`, name).Scan(&si.active, &pid, &plugin, &db, &lsn)
	if errors.Is(err, pgx.ErrNoRows) {
		return si, nil
	}
	if err != nil {
		return si, fmt.Errorf("look up replication slot %q: %w", name, err)
	}
	si.exists = true
	if pid != nil {
		si.activePID = *pid
	}
	if plugin != nil {
		si.plugin = *plugin
	}
	if db != nil {
		si.database = *db
	}
	if lsn != nil {
		si.confirmed, _ = pglogrepl.ParseLSN(*lsn)
	}
	return si, nil
}

// checkSlot reports a slot this connector cannot use.
func checkSlot(si slotInfo, name, database string) error {
	switch {
	case si.plugin != "pgoutput":
		return core.Fatal(fmt.Errorf("replication slot %q uses plugin %q, not pgoutput: drop it (SELECT pg_drop_replication_slot('%s')) or configure another slot name", name, si.plugin, name))
	case si.database != database:
		return core.Fatal(fmt.Errorf("replication slot %q belongs to database %q, not %q: configure another slot name", name, si.database, database))
	case si.active:
		return slotBusy(name, si.activePID)
	}
	return nil
}

func slotBusy(name string, pid int32) error {
	return fmt.Errorf("replication slot %q is in use by another consumer (walsender pid %d): stop that consumer, or give this connector its own slot name; retrying", name, pid)
}
