// Command binlogread is a decoding ceiling for mysql_cdc's catch-up: it
// reads a MySQL or MariaDB binlog as a replica with go-mysql's
// BinlogSyncer (the library, version and syncer settings mysql_cdc uses,
// events handed over synchronously), lets go-mysql decode every row event
// into its rows, counts them and drops them: no schema history, no
// change, no event, no stream. With -text it also writes every row as a
// line of text to /dev/null, as `mariadb-binlog -v` does; with -raw it
// decodes no event at all (go-mysql's raw mode: only the headers, rotate
// and format events are read), as `mariadb-binlog
// --read-from-remote-server -r /dev/null` copies events without decoding
// rows. It reads from the start of -file to the binlog's end when it
// starts, and prints what it read, how fast and the CPU time it took.
//
//	binlogread -dsn 'user:pass@tcp(127.0.0.1:3306)/' -file mariadb-bin.000012 [-text | -raw]
//
// BenchmarkCatchUp in connectors/mysql runs it beside `mariadb-binlog
// --read-from-remote-server` when TRIBUTARY_BENCH_BINLOGREAD names it
// (bench/mysql.sh builds it). It is a program of its own, in no package
// the sidecar imports.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	driver "github.com/go-sql-driver/mysql"
)

func main() {
	dsn := flag.String("dsn", "", "Go MySQL DSN of a user with REPLICATION SLAVE")
	file := flag.String("file", "", "first binlog file to read (from its start)")
	text := flag.Bool("text", false, "also write every row as text to /dev/null")
	raw := flag.Bool("raw", false, "decode no event (go-mysql's raw mode): the read without row decoding")
	flag.Parse()
	if *dsn == "" || *file == "" || *text && *raw {
		fmt.Fprintln(os.Stderr, "binlogread: -dsn and -file are required; -text and -raw exclude each other")
		os.Exit(2)
	}
	if err := run(*dsn, *file, *text, *raw); err != nil {
		fmt.Fprintln(os.Stderr, "binlogread:", err)
		os.Exit(1)
	}
}

// counter is the syncer's event handler: it counts rows and stops at end.
type counter struct {
	endFile      string
	endPos       uint32
	file         string
	rows, events int
	rowEvents    int
	bytes        int64
	out          *bufio.Writer
}

var errEnd = errors.New("end of the binlog reached")

func (c *counter) HandleEvent(e *replication.BinlogEvent) error {
	c.events++
	c.bytes += int64(e.Header.EventSize)
	switch e.Header.EventType {
	case replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2,
		replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2:
		c.rowEvents++
	}
	switch ev := e.Event.(type) {
	case *replication.RotateEvent:
		c.file = string(ev.NextLogName)
	case *replication.RowsEvent:
		c.rows += len(ev.Rows)
		if c.out != nil {
			for _, row := range ev.Rows {
				fmt.Fprintln(c.out, row...)
			}
		}
	}
	if c.file == c.endFile && e.Header.LogPos >= c.endPos {
		return errEnd
	}
	return nil
}

func run(dsn, file string, text, raw bool) error {
	dc, err := driver.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("dsn: %w", err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	var version string
	if err := db.QueryRow("SELECT VERSION()").Scan(&version); err != nil {
		return fmt.Errorf("read the server version: %w", err)
	}
	flavor := gomysql.MySQLFlavor
	if strings.Contains(strings.ToLower(version), "mariadb") {
		flavor = gomysql.MariaDBFlavor
	}
	c := &counter{}
	if err := endOfBinlog(db, c); err != nil {
		return err
	}
	host, port, _ := strings.Cut(dc.Addr, ":")
	p, _ := strconv.Atoi(port)
	if text {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer null.Close()
		c.out = bufio.NewWriterSize(null, 64<<10)
		defer c.out.Flush()
	}
	start := time.Now()
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: uint32(1<<30 + os.Getpid()%(1<<20)), Flavor: flavor, Host: host, Port: uint16(p),
		User: dc.User, Password: dc.Passwd, Charset: "utf8mb4",
		ParseTime: true, TimestampStringLocation: time.UTC, DisableRetrySync: true,
		SynchronousEventHandler: c, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		FillZeroLogPos: flavor == gomysql.MariaDBFlavor, RawModeEnabled: raw,
	})
	defer syncer.Close()
	c.file = file
	bs, err := syncer.StartSync(gomysql.Position{Name: file, Pos: 4})
	if err != nil {
		return fmt.Errorf("start reading %s: %w", file, err)
	}
	if _, err := bs.GetEvent(context.Background()); !errors.Is(err, errEnd) {
		return fmt.Errorf("binlog stream: %w", err)
	}
	took := time.Since(start)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	rows := strconv.Itoa(c.rows)
	if raw {
		rows = "(not decoded)"
	}
	fmt.Printf("binlogread: %s rows in %d rows events of %d events (%.1f MB), %s to %s:%d, %.3fs, cpu %.3fs, %.0f rows/s\n",
		rows, c.rowEvents, c.events, float64(c.bytes)/1e6, file, c.endFile, c.endPos, took.Seconds(), cpu.Seconds(), float64(c.rows)/took.Seconds())
	return nil
}

// endOfBinlog sets c's end to the server's binlog position now.
func endOfBinlog(db *sql.DB, c *counter) error {
	rows, err := db.Query("SHOW MASTER STATUS")
	if err != nil {
		return fmt.Errorf("read the binlog position: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	if !rows.Next() {
		return errors.New("SHOW MASTER STATUS returned nothing: is the binlog on (log_bin)?")
	}
	vals := make([]any, len(cols))
	vals[0], vals[1] = &c.endFile, &c.endPos
	for i := 2; i < len(cols); i++ {
		vals[i] = new(sql.RawBytes)
	}
	if err := rows.Scan(vals...); err != nil {
		return fmt.Errorf("read the binlog position: %w", err)
	}
	return rows.Err()
}
