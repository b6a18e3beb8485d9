// Package lifecycle follows business entities (an order, an invoice)
// through the state machines the configuration's `entities:` section
// declares: which event types move an instance from which states to which,
// and how long it may stay in each.
//
// A [Machine] is one entity's compiled declaration. The [Tracker] is a
// core.Sink the sidecar adds to its sinks when entities are declared, so
// it reads the stream through a consumer group of its own, per key in
// order, committing behind what it stored. It keeps each instance's
// current state and timeline in a SQLite [Store] in the state directory,
// judges each instance's events in event-time order after a short
// reordering window, and publishes dev.tributary.lifecycle.violation,
// .stuck and .resolved events to the stream. [WriteGraph] draws a
// machine as Graphviz dot or Mermaid.
//
// The consumer group is named after the store's generation (see
// [SinkName]): a store that is deleted or rebuilt gets a new generation,
// and the tracker reads the stream again from its beginning.
package lifecycle
