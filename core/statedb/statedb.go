// Package statedb opens the SQLite databases Tributary keeps in a state
// directory (the embedded stream, a poll source's index, a files source's
// processed-file list, a webhook inbox) with one driver and one way of
// setting their pragmas.
package statedb

import (
	"database/sql"
	"net/url"
	"strconv"

	_ "modernc.org/sqlite" // registers the pure Go "sqlite" database/sql driver
)

// Driver is the database/sql driver name of the SQLite driver.
const Driver = "sqlite"

// Sync is how durable a commit is.
type Sync int

const (
	// SyncFull (synchronous=FULL) makes a commit survive a power loss.
	SyncFull Sync = iota
	// SyncNormal (synchronous=NORMAL, in WAL mode) makes a commit survive
	// a crash of the process; a power loss may undo the last commits.
	SyncNormal
)

// Options says how a database is used. The zero value suits a small
// database that must not lose a commit.
type Options struct {
	Sync Sync
	// CacheKiB is the page cache of each connection, in KiB; 0 keeps
	// SQLite's default.
	CacheKiB int
	// DeferWAL leaves the journal mode as the file has it, for a caller
	// that turns WAL on itself: a new file's page size can only be chosen
	// before.
	DeferWAL bool
	// Pragmas are run on each new connection after the others, each as
	// the text following PRAGMA, such as "temp_store(MEMORY)".
	Pragmas []string
	// TxLock is how BEGIN starts a transaction: "deferred" (SQLite's
	// default when empty), "immediate" or "exclusive".
	TxLock string
}

// busyTimeout is how long a statement waits for a lock another connection
// holds before it fails with SQLITE_BUSY.
const busyTimeout = "busy_timeout(10000)"

// DSN returns the data source name opening the file at path with o. Every
// connection waits up to 10 s for a lock, and, unless o.DeferWAL, writes
// through a write-ahead log so that readers never block the writer. path
// is a plain file name, never a URI, so it may hold any character SQLite
// accepts in a file name but '?'.
func DSN(path string, o Options) string {
	q := url.Values{}
	q.Add("_pragma", busyTimeout)
	if !o.DeferWAL {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	if o.Sync == SyncNormal {
		q.Add("_pragma", "synchronous(NORMAL)")
	} else {
		q.Add("_pragma", "synchronous(FULL)")
	}
	if o.CacheKiB > 0 {
		q.Add("_pragma", "cache_size(-"+strconv.Itoa(o.CacheKiB)+")")
	}
	for _, p := range o.Pragmas {
		q.Add("_pragma", p)
	}
	if o.TxLock != "" {
		q.Set("_txlock", o.TxLock)
	}
	return path + "?" + q.Encode()
}

// Open opens (creating when missing) the database at path with o. An
// empty path opens a database in memory, private to the returned *sql.DB,
// which is then limited to one connection: each connection to memory
// would see a database of its own. Open does no I/O: the file is opened
// with the first connection.
func Open(path string, o Options) (*sql.DB, error) {
	if path == "" {
		o.DeferWAL = true // memory has no log
		db, err := sql.Open(Driver, DSN(":memory:", o))
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		return db, nil
	}
	return sql.Open(Driver, DSN(path, o))
}
