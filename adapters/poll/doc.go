// Package poll is the mechanism behind connectors that must ask a system
// what changed: REST APIs, SQL tables and file drops. A connector supplies a
// [Fetcher] that reads records; this package schedules runs, turns records
// into changes, keeps the local state that detects changes and advances it
// only after the runtime acknowledges the changes.
//
// # Scheduling
//
// Runs follow a cron expression (five or six fields, seconds first when six,
// CRON_TZ= prefixes, descriptors such as @hourly) or "@every <duration>",
// in a time zone, delayed by a random jitter. One Source never overlaps
// itself: runs execute one after another on one goroutine, each page of
// records hashed and diffed on a second one while the Fetcher reads the
// next page. The first run
// after the first Open starts at once. After downtime the catch-up policy
// decides what happens to the scheduled times missed since the last
// completed run: CatchUpOne runs once, CatchUpAll runs once per missed time
// (bounded by MaxCatchUp), each with its own run time. A run whose changes
// were not all acknowledged before a crash is run again at once, with the
// same run time.
//
// # Change detection
//
// ModeCursor asks for records whose cursor (a timestamp column, an
// increasing id, an API parameter) is at or after the watermark minus a
// look-back window, so that rows sharing a timestamp or committing late are
// read again. What the overlap reads twice is recognised by the set of
// (key, cursor, content hash) already emitted inside the window, kept in
// memory and in a local SQLite database, and not emitted again.
//
// ModeSnapshot reads the whole set every run and compares it with a durable
// index of key to content hash in the local database: new keys become
// creates, changed hashes updates, and keys the run did not see deletes.
// Index rows are numbered in the order keys were first read, and the run
// reads the index in that order alongside the source: when the source
// returns its records in a stable order (the SQL connector orders them by
// key), each key is the next index entry and a run is one sequential pass
// over both, with a lookup only for keys that are new or out of place. The
// keys a run saw are remembered in a bitmap of index row ids, and deletes
// are looked for only among the entries the pass stepped over (or in the
// whole index when there are too many), so memory stays bounded (about one
// bit per indexed key) however large the set.
//
// ModeEach emits every record the fetcher returns; the fetcher names each
// record's position and may attach a callback run once the record and every
// one before it are acknowledged (moving a processed file).
//
// # Positions and acknowledgement
//
// A change's position is derived from the record, never from the run that
// read it: (cursor, key, hash) in cursor mode, (key, version, hash) in
// snapshot mode, the fetcher's id in each mode. A change read again after a
// crash therefore carries the same position, and its events the same ids.
// Local state (the seen set, the index, completed runs) changes only in
// Ack, once the runtime has stored the checkpoint: a crash replays, never
// skips. When Open is given no position the local state is reset, since the
// checkpoint it belongs to is gone. In cursor mode the position Open is
// given wins over the local watermark, even when it is behind it: the
// checkpoint was set back (PUT /v1/connectors/NAME/checkpoint), and the
// rows after it are read again with their positions, as a Kafka Connect
// offset reset does.
//
// # Freshness and series
//
// On a quiet system no change is read and the checkpoint stays where it
// was; each successful run still proves the source is caught up. CaughtUp
// (core.Freshness) returns when the last successful run finished, and the
// runtime reports the age of that confirmation rather than the
// checkpoint's. A connector's series, labelled connector=<name> and
// registered through core.Env.Metrics from its first Open (before it
// connects), are tributary_poll_last_success_timestamp_seconds (0 before
// the first success) and the histogram tributary_poll_duration_seconds by
// outcome (success, error). The runtime reopens the same Source after a
// failure: the series registered by the first Open are kept and go on
// counting.
package poll
