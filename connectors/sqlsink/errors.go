package sqlsink

import (
	"context"
	"database/sql/driver"
	"errors"
	"io/fs"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	mssql "github.com/microsoft/go-mssqldb"
	"modernc.org/sqlite"

	"github.com/tributary/tributary/core"
)

// verdict is what a failed statement means for its rows.
type verdict int

const (
	// refused: the row itself is bad (a constraint it breaks, a value the
	// column cannot take, a trigger that rejects it); the statement was
	// undone alone, and the row goes to the dead-letter topic.
	refused verdict = iota
	// transient: the statement failed for a reason that may pass (a lock,
	// a deadlock victim under a savepoint); it was undone alone and the
	// row is retried.
	transient
	// lost: the transaction cannot go on (a lost connection, a deadlock
	// that rolled it back); every row of the batch is retried.
	lost
)

// mysqlRefused are MySQL and MariaDB errors a bad row gives: NULL in a
// NOT NULL column, a duplicate of another unique key, values out of range
// or of the wrong type, a foreign key, a CHECK, a trigger's SIGNAL,
// invalid JSON.
var mysqlRefused = map[uint16]bool{
	1048: true, 1062: true, 1264: true, 1265: true, 1292: true, 1366: true,
	1367: true, 1406: true, 1451: true, 1452: true, 1644: true, 1690: true,
	3140: true, 3819: true, 4025: true,
}

// mssqlRefused are the SQL Server errors of a bad row: unique keys,
// constraints, NULL, truncation, conversions, overflow, a RAISERROR of a
// trigger.
var mssqlRefused = map[int32]bool{
	245: true, 241: true, 242: true, 515: true, 547: true, 2601: true,
	2627: true, 2628: true, 8114: true, 8115: true, 8152: true, 50000: true,
}

// classify says what a failed statement means for its rows.
func (d dialect) classify(err error) verdict {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return lost
	}
	var pe *pgconn.PgError
	var me *mysql.MySQLError
	var se *sqlite.Error
	var ms mssql.Error
	switch {
	case errors.As(err, &pe):
		if strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23") || pe.Code == "P0001" {
			return refused
		}
		// Under a savepoint, PostgreSQL undoes the statement alone.
		return transient
	case errors.As(err, &me):
		state := string(me.SQLState[:])
		if mysqlRefused[me.Number] || strings.HasPrefix(state, "22") || strings.HasPrefix(state, "23") {
			return refused
		}
		// A deadlock or a lock timeout may have rolled the whole
		// transaction back, after which MySQL would commit each later
		// statement on its own: the batch starts over.
		return lost
	case errors.As(err, &se):
		switch se.Code() & 0xff {
		case 18, 19, 20, 25: // TOOBIG, CONSTRAINT, MISMATCH, RANGE
			return refused
		}
		return lost
	case errors.As(err, &ms):
		if mssqlRefused[ms.Number] {
			return refused
		}
		return transient
	}
	return lost
}

// fatalOpen marks the errors of Open that retrying cannot fix: rejected
// credentials, a missing database or permission.
func fatalOpen(err error) error {
	var pe *pgconn.PgError
	var me *mysql.MySQLError
	var ms mssql.Error
	switch {
	case errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "28") || pe.Code == "42501" || pe.Code == "3D000"):
		return core.Fatal(err)
	case errors.As(err, &me) && (me.Number == 1044 || me.Number == 1045 || me.Number == 1049 || me.Number == 1142):
		return core.Fatal(err)
	case errors.As(err, &ms) && (ms.Number == 18456 || ms.Number == 4060 || ms.Number == 229):
		return core.Fatal(err)
	case errors.Is(err, fs.ErrPermission):
		return core.Fatal(err)
	}
	return err
}

// missingTable reports whether err says the table does not exist.
func missingTable(err error) bool {
	var pe *pgconn.PgError
	var me *mysql.MySQLError
	var ms mssql.Error
	switch {
	case errors.As(err, &pe):
		return pe.Code == "42P01" || pe.Code == "3F000"
	case errors.As(err, &me):
		return me.Number == 1146
	case errors.As(err, &ms):
		return ms.Number == 208
	}
	return strings.Contains(err.Error(), "no such table")
}
