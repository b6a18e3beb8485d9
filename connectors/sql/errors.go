package sql

import (
	"errors"
	"fmt"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	mssql "github.com/microsoft/go-mssqldb"

	"github.com/tributary/tributary/core"
)

// classify applies the connectors' failure policy (core.Source) to a
// database error: rejected credentials, a missing database, table or
// column and a missing privilege need a person, so they stop the connector
// (core.Fatal) with what to check; everything else (the server down or
// restarting, a timeout, a lock) is retried with backoff.
func classify(err error) error {
	if err == nil || errors.Is(err, core.ErrFatal) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "28P01" || pe.Code == "28000":
			return core.Fatal(fmt.Errorf("%w: the database rejected the credentials: check the user and password in dsn", err))
		case pe.Code == "3D000":
			return core.Fatal(fmt.Errorf("%w: check the database name in dsn", err))
		case pe.Code == "42P01" || pe.Code == "42703" || pe.Code == "3F000":
			return core.Fatal(fmt.Errorf("%w: create it, or fix table, query or the columns in the configuration", err))
		case pe.Code == "42501":
			return core.Fatal(fmt.Errorf("%w: grant the privilege to the connector's user", err))
		}
		return err
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1045, 1698:
			return core.Fatal(fmt.Errorf("%w: the database rejected the credentials: check the user and password in dsn", err))
		case 1049:
			return core.Fatal(fmt.Errorf("%w: check the database name in dsn", err))
		case 1146, 1054:
			return core.Fatal(fmt.Errorf("%w: create it, or fix table, query or the columns in the configuration", err))
		case 1044, 1142, 1143:
			return core.Fatal(fmt.Errorf("%w: grant the privilege to the connector's user", err))
		}
		return err
	}
	var se mssql.Error
	if errors.As(err, &se) {
		switch se.Number {
		case 18456:
			return core.Fatal(fmt.Errorf("%w: the database rejected the credentials: check the user and password in dsn", err))
		case 4060:
			return core.Fatal(fmt.Errorf("%w: check the database name in dsn", err))
		case 208, 207:
			return core.Fatal(fmt.Errorf("%w: create it, or fix table, query or the columns in the configuration", err))
		case 229, 230:
			return core.Fatal(fmt.Errorf("%w: grant the privilege to the connector's user", err))
		}
	}
	return err
}
