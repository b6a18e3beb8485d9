package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/tributary/tributary/core"
)

// serverInfo is what Open learns about the server.
type serverInfo struct {
	flavor   string
	version  string
	serverID uint32
	// warnings are settings that work but lose something; Status lists
	// them.
	warnings []string
	// retention is how long the server keeps binlogs, in seconds; 0 means
	// forever.
	retention int64
}

// detectFlavor reads the server version: MariaDB says so in it.
func detectFlavor(version string) string {
	if strings.Contains(strings.ToLower(version), "mariadb") {
		return gomysql.MariaDBFlavor
	}
	return gomysql.MySQLFlavor
}

// settings are the server variables the checks read.
type settings struct {
	logBin, format, rowImage, rowMetadata string
	serverID                              uint32
	retention                             int64
}

// checkSettings reports each unsafe setting with its fix: the problems
// that make the binlog unreadable as errors (joined), the ones that lose
// something as warnings.
func checkSettings(s settings, ourID uint32) (warnings []string, err error) {
	var errs []error
	if s.logBin != "1" && !strings.EqualFold(s.logBin, "ON") {
		errs = append(errs, errors.New("the binlog is off: set log_bin (and server_id) in the server's configuration and restart it"))
	}
	if !strings.EqualFold(s.format, "ROW") {
		errs = append(errs, fmt.Errorf("binlog_format is %s: row changes are only in a ROW binlog; SET GLOBAL binlog_format = 'ROW' and set binlog_format = ROW in the server's configuration", s.format))
	}
	switch strings.ToUpper(s.rowImage) {
	case "FULL", "":
	case "MINIMAL":
		warnings = append(warnings, "binlog_row_image is MINIMAL: before images carry only the key and after images only the columns changed (absent from the record); SET GLOBAL binlog_row_image = 'FULL' for whole rows")
	default:
		warnings = append(warnings, fmt.Sprintf("binlog_row_image is %s: BLOB and TEXT columns an update leaves unchanged are absent from the record; SET GLOBAL binlog_row_image = 'FULL' for whole rows", s.rowImage))
	}
	if !strings.EqualFold(s.rowMetadata, "FULL") {
		m := s.rowMetadata
		if m == "" {
			m = "not supported"
		}
		warnings = append(warnings, fmt.Sprintf("binlog_row_metadata is %s: column names cannot be checked against the schema history; SET GLOBAL binlog_row_metadata = 'FULL' (MySQL 8.0.1+, MariaDB 10.5+)", m))
	}
	if s.retention > 0 && s.retention < 24*3600 {
		warnings = append(warnings, fmt.Sprintf("binlogs are kept %s only: a connector stopped longer loses its position; raise binlog_expire_logs_seconds (or expire_logs_days)", secondsText(s.retention)))
	}
	if s.serverID == ourID {
		errs = append(errs, fmt.Errorf("server_id %d is the server's own: set server_id in the connector's configuration to an id no server or replica uses", ourID))
	}
	return warnings, errors.Join(errs...)
}

func secondsText(s int64) string {
	if s%3600 == 0 {
		return strconv.FormatInt(s/3600, 10) + "h"
	}
	return strconv.FormatInt(s, 10) + "s"
}

// inspectServer reads the version and the settings, checks them and that
// no other replica uses the connector's server id.
func inspectServer(ctx context.Context, db *sql.DB, ourID uint32, ourHost string) (serverInfo, error) {
	var info serverInfo
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&info.version); err != nil {
		return info, fmt.Errorf("read the server version: %w", err)
	}
	info.flavor = detectFlavor(info.version)
	var s settings
	var logBin, format, image sql.NullString
	var sid int64
	if err := db.QueryRowContext(ctx, "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id").Scan(&logBin, &format, &image, &sid); err != nil {
		return info, fmt.Errorf("read the binlog settings: %w", err)
	}
	s.logBin, s.format, s.rowImage, s.serverID = logBin.String, format.String, image.String, uint32(sid)
	var meta sql.NullString
	if db.QueryRowContext(ctx, "SELECT @@binlog_row_metadata").Scan(&meta) == nil {
		s.rowMetadata = meta.String
	}
	var secs sql.NullFloat64
	if db.QueryRowContext(ctx, "SELECT @@binlog_expire_logs_seconds").Scan(&secs) == nil && secs.Valid {
		s.retention = int64(secs.Float64)
	} else if db.QueryRowContext(ctx, "SELECT @@expire_logs_days").Scan(&secs) == nil && secs.Valid {
		s.retention = int64(secs.Float64 * 86400)
	}
	info.serverID, info.retention = s.serverID, s.retention
	warnings, err := checkSettings(s, ourID)
	info.warnings = warnings
	if err != nil {
		return info, core.Fatal(err)
	}
	if err := checkReplicas(ctx, db, info.flavor, ourID, ourHost); err != nil {
		return info, err
	}
	return info, nil
}

// checkReplicas fails when a replica other than an earlier run of this
// connector (registered with the same host name) uses server id ourID:
// the server would disconnect one of the two.
func checkReplicas(ctx context.Context, db *sql.DB, flavor string, ourID uint32, ourHost string) error {
	stmt := "SHOW SLAVE HOSTS"
	rows, err := db.QueryContext(ctx, stmt)
	if err != nil {
		if rows, err = db.QueryContext(ctx, "SHOW REPLICAS"); err != nil {
			return nil // not allowed to look: the stream reports a clash
		}
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if rows.Scan(ptrs...) != nil {
			continue
		}
		var id, host string
		for i, c := range cols {
			switch strings.ToLower(c) {
			case "server_id":
				id = string(vals[i])
			case "host":
				host = string(vals[i])
			}
		}
		if id == strconv.FormatUint(uint64(ourID), 10) && host != ourHost {
			return core.Fatal(fmt.Errorf("server id %d is in use by another replica (host %q): set server_id in the connector's configuration to an unused id", ourID, host))
		}
	}
	return nil
}

// errPurged is wrapped by the error of a checkpoint whose binlog is gone.
var errPurged = errors.New("binlog purged")

// checkKept reports whether the server still has the binlog from place p
// on, and if not, what it has.
func checkKept(ctx context.Context, db *sql.DB, flavor string, p binlogPos) (bool, string, error) {
	first, err := firstBinlog(ctx, db)
	if err != nil {
		return false, "", err
	}
	switch set := p.gtid.(type) {
	case nil:
		rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
		if err != nil {
			return false, "", fmt.Errorf("list the binlogs: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var rest sql.RawBytes
			cols, _ := rows.Columns()
			dst := []any{&name}
			for range cols[1:] {
				dst = append(dst, &rest)
			}
			if rows.Scan(dst...) == nil && name == p.file {
				return true, "", nil
			}
		}
		return false, "oldest binlog " + first, nil
	case *gomysql.MariadbGTIDSet:
		// The oldest binlog starts with the GTID list of what precedes it.
		rows, err := db.QueryContext(ctx, "SHOW BINLOG EVENTS IN '"+strings.ReplaceAll(first, "'", "")+"' LIMIT 4")
		if err != nil {
			return false, "", fmt.Errorf("read the start of binlog %s: %w", first, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if rows.Scan(ptrs...) != nil {
				continue
			}
			var typ, info string
			for i, c := range cols {
				switch strings.ToLower(c) {
				case "event_type":
					typ = string(vals[i])
				case "info":
					info = string(vals[i])
				}
			}
			if typ != "Gtid_list" {
				continue
			}
			list := strings.Trim(info, "[]")
			before, err := gomysql.ParseMariadbGTIDSet(list)
			if err != nil {
				return false, "", fmt.Errorf("read the GTID list of binlog %s: %w", first, err)
			}
			mb := before.(*gomysql.MariadbGTIDSet)
			for dom, g := range mb.Sets {
				have, ok := set.Sets[dom]
				if !ok || have.SequenceNumber < g.SequenceNumber {
					return false, fmt.Sprintf("oldest binlog %s starts after GTID %s", first, g), nil
				}
			}
			return true, "", nil
		}
		return true, "", nil
	case *gomysql.MysqlGTIDSet:
		var purged string
		if err := db.QueryRowContext(ctx, "SELECT @@gtid_purged").Scan(&purged); err != nil {
			return false, "", fmt.Errorf("read gtid_purged: %w", err)
		}
		ps, err := gomysql.ParseMysqlGTIDSet(strings.ReplaceAll(purged, "\n", ""))
		if err != nil {
			return false, "", err
		}
		if set.Contain(ps) {
			return true, "", nil
		}
		return false, "gtid_purged is " + purged, nil
	}
	return true, "", nil
}

func firstBinlog(ctx context.Context, db *sql.DB) (string, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return "", fmt.Errorf("list the binlogs (needs REPLICATION CLIENT or BINLOG MONITOR): %w", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return "", errors.New("the server lists no binlog: is log_bin on?")
	}
	var name string
	var rest sql.RawBytes
	dst := []any{&name}
	for range cols[1:] {
		dst = append(dst, &rest)
	}
	if err := rows.Scan(dst...); err != nil {
		return "", err
	}
	return name, nil
}
