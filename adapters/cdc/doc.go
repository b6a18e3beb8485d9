// Package cdc is what change-data-capture connectors (PostgreSQL logical
// replication, the MySQL/MariaDB binlog) share: the snapshot modes and the
// decision to snapshot, the position format that names a change either by
// its place in a snapshot or by its place in the database's change log, the
// order in which a snapshot reads its tables and resumes after a crash, and
// the slot lag metric.
//
// # Positions
//
// A CDC position is version 1 JSON. A streamed change is named by the log
// position of its transaction's commit (an LSN, a binlog file and offset)
// and its index within that transaction:
//
//	{"lsn":"0/16B3748","i":3}
//
// Every change of one transaction shares the commit position and no two
// share an index, so positions are unique; a transaction decoded again after
// a restart yields the same commit position and the same indexes, so they
// are stable, and event ids derived from them match. Resuming from a
// position inside a transaction re-reads the transaction and skips the
// indexes at or before the acknowledged one.
//
// A change read by a snapshot is named by the log position the snapshot is
// consistent with, its table and the text form of its key columns:
//
//	{"snap":"0/16B3700","t":"public.orders","k":["42"]}
//
// Tables are started in a fixed order (Plan), each read in key order. When
// one table is read at a time, such a position says how far the snapshot
// got: every table before t is done and t is done up to key k. When several
// tables are read at once (Progress), their chunks are handed out
// interleaved, so a position also carries the greatest table started ("hi")
// and the last key handed out of every other table under way ("p"):
//
//	{"snap":"0/16B3700","t":"public.orders","k":["42"],"hi":"public.parts","p":{"public.lines":["7","2"]}}
//
// That progress depends on how chunks interleaved, which differs from one
// run to the next, so such a position's identity (core.Position.ID, from
// which event ids derive) is its single-table form: a row read again after a
// crash keeps its event ids.
package cdc
