// Package lifecycle follows business entities (an order, an invoice)
// through the state machines the configuration's `entities:` section
// declares: which event types move an instance from which states to which,
// and how long it may stay in each.
//
// A [Machine] is one entity's compiled declaration. The [Tracker] is a
// core.Sink the sidecar adds to its sinks when entities are declared, so
// it reads the stream through a consumer group of its own, per key in
// order, committing behind what it stored. It judges each instance's
// events in event-time order after a short reordering window, and
// publishes dev.tributary.lifecycle.violation, .stuck and .resolved
// events to the stream. [WriteGraph] draws a machine as Graphviz dot or
// Mermaid.
//
// # Memory and store
//
// The current state of every instance lives in memory, in a compact
// open-addressed table (about 90 bytes of heap an instance with short
// ids: state, entered and updated times, the latest log sequence, a
// 64-bit bloom of its event ids, its id and last event id). Listing by
// state scans it; the time-limit check and the retention scan it only
// when a limit or a retention may have passed.
//
// The durable [Store] in the state directory (SQLite) is sequential: a
// log of every event taken, appended in one transaction per Write, each
// row linked to the instance's previous event, and a table of verdicts
// appended in one transaction per judging. No index by instance is
// written on the hot path: an instance's timeline is a walk down its
// chain from the sequence the table holds, one primary-key read a step.
// Now and then (every million judged events, or the number of instances
// when more, and every ten minutes) the tracker writes the table into a
// snapshot file ([SnapshotFile]), beside and then renamed over the
// previous one; start-up loads it and replays the log after it, and a
// snapshot that cannot be read is ignored (the whole log is replayed).
//
// A redelivered event (a crash between the store's commit and the offset
// commit, an operator's replay) is dropped: when both of its bloom bits
// are set in its instance's bloom, the tracker walks the instance's chain
// for its id. This holds whatever the order in which the runtime's
// concurrent Writes stored the events of a partition, which a last
// position per partition would not.
//
// The consumer group is named after the store's generation (see
// [SinkName]): a store that is deleted or rebuilt gets a new generation,
// and the tracker reads the stream again from its beginning.
package lifecycle
