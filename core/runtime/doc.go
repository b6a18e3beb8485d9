// Package runtime drives connectors: it opens each source from its last
// checkpoint, maps every change to events with the connector's rules,
// publishes them to the shared stream (batched and asynchronous), sends
// failures to the dead-letter topic, and commits checkpoints in order, only
// after the stream has acknowledged everything before them.
//
// Each connector runs in its own supervisor. Transient errors (a source that
// cannot connect, a stream that rejects a publish) are retried with capped
// exponential backoff and jitter and show in the connector's status; an
// error wrapping core.ErrFatal stops that connector alone.
//
// Sinks run beside the connectors, each in its own supervisor: a sink reads
// the topics of its event types through its consumer group
// (SinkGroupPrefix + its name), delivers in order per partition key with
// bounded concurrency, retries on its schedule (parking long waits in a
// retry store in its state directory), dead-letters what cannot be
// delivered, opens a circuit when its target fails every delivery, and acks
// an event only once it is delivered, skipped or dead-lettered, so that its
// group commits behind them.
//
// An operator acts on a running runtime: PauseConnector ends a
// connector's session after what it read is committed and holds it until
// ResumeConnector; SetCheckpoint pauses a running connector, stores a new
// position and resumes it from there; PauseSink and ResumeSink do the
// same for sinks; Apply replaces, adds and removes connectors and sinks by
// name (a configuration reload) while the others keep running. With
// Options.TracerProvider every change is traced, stage by stage
// (tracing.go), and its events carry the trace context as traceparent.
//
// Shutdown follows http.Server.Shutdown: cancelling Run's context stops
// intake, in-flight events drain, the last checkpoints commit, sources and
// then the stream close, all within Options.ShutdownTimeout.
package runtime
