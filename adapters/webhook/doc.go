// Package webhook is the mechanism behind connectors that receive pushed
// HTTP deliveries: the request handler, body parsing, the Verifier a
// connector plugs in, deduplication by delivery id, and a durable local
// inbox with backpressure. It knows no particular sender; the webhook
// connector (connectors/webhook) holds the provider presets.
//
// # What a 2xx means
//
// With AckMode AckInbox, a delivery is answered 200 only after it is
// committed to the inbox, an append-only log of segment files in the
// connector's state directory (webhook-inbox/; each record framed with
// its length and a CRC-32C, each group of records written at once and
// made durable with fdatasync before any of them is answered). The inbox
// keeps the delivery until the runtime acknowledges it, which happens once
// its events are durable on the stream and the checkpoint is stored; after
// a crash or a broker outage, deliveries not acknowledged are read again.
// So a 2xx is never followed by a loss, and a stream outage only makes
// the inbox grow. When it holds MaxPending deliveries (or MaxPendingBytes
// of bodies), new deliveries are answered 503 with Retry-After and nothing
// is stored.
//
// With AckMode AckStream the stream is the inbox: a delivery is not
// written to the inbox log. Once verified, parsed and checked against the
// dedup index and the deliveries in flight, it is handed to Read in
// memory (bounded by MaxPending and MaxPendingBytes) and answered 200
// ("delivered") only when the runtime's Ack covers it: its events, or its
// dead letter, are durable on the stream and its checkpoint is stored.
// So a delivery costs one durable write, the stream's, before its answer.
// A delivery not acknowledged within AckTimeout, or still waiting when the
// source closes, is answered 503 with Retry-After and dropped if Read has
// not taken it yet: the sender's retry brings it again. If Read had taken
// it, its events may still reach the stream; a retry meanwhile waits for
// that acknowledgement (and is answered 200 "duplicate"), and a retry
// after it is a duplicate. Identical deliveries in flight at once are
// emitted once: the later ones wait for the first and share its answer.
//
// An acknowledged delivery's id joins the dedup index at once in memory
// and is appended to the seen file in the writer's next write, without a
// flush of its own (the seen file is synced every ackDelay and at close):
// a killed process loses none, but a crash of the machine, or of the
// process between the stream's acknowledgement and that write, can forget
// the ids of the last moments, and a delivery among them that its sender
// sends again (its 2xx lost) is emitted again, with the same event ids,
// since they derive from the delivery id. Deliveries the inbox stored
// before a change to AckStream are read first, as with AckInbox.

// One writer goroutine commits the deliveries of all concurrent requests
// in one write (group commit), so one fdatasync covers many deliveries;
// commits start at most once a millisecond, so that under a steady load
// each carries what arrived meanwhile, while an idle sidecar commits a
// delivery at once. Segments are filled with zeros ahead of use, so that
// an fdatasync writes data without a file system journal commit. A
// segment whose deliveries are all acknowledged is deleted, its delivery
// ids first moved to the current seen file (see Identity and deduplication).
//
// After a crash the log is read up to its last whole frame: a frame cut
// short or failing its CRC ends a segment (it is the tail of a write
// nothing was answered for).
//
// # Identity and deduplication
//
// Each delivery has an id: the sender's (a header or a body field, chosen by
// the connector) or, when it has none, the SHA-256 of the body. The id is
// the change's position (version 1, data = the id), so the events of a
// delivery have ids derived from it. An id accepted within the dedup window
// is answered 200 with status "duplicate" and not emitted again.
//
// Ids are remembered by 16 bytes of their SHA-256, with bounded memory.
// The newest, up to Config.DedupMemoryIDs (default 32Ki) or a sixteenth
// of the window, are held in a map (the hot set), made durable by their
// segments and by the seen file their ids move to when a segment is
// deleted. Then a goroutine seals them into a run: an immutable file of
// the sorted digests with a CRC, fsynced and renamed into place, after
// which the older seen files are deleted. Each run keeps in memory a
// blocked Bloom filter (10 bits an id, about 1% false positives) and a
// sparse index (one digest per 4 KiB block), so a fresh id costs one
// cache line per run and a duplicate one block read. Runs past the window
// are deleted; the runs of one eighth of the window are merged in the
// background. An id is remembered for at least the window and forgotten
// at most an eighth and a sixteenth of it later. At open, runs are read
// once to check their CRC and rebuild filters and indexes; a run failing
// its CRC is set aside (its ids are no longer deduplicated), a run cut by
// a crash before its rename is deleted, and the seen files (also those of
// versions that held every id in memory) are read into the hot set,
// sealed as it fills.
//
// # Payloads built for the rules
//
// Told the payload paths the connector's rules read (SetPayloadPaths,
// called by the runtime before Open), the source builds a JSON body's
// payload only along them: other fields are checked for syntax and
// skipped, an array whose len() alone is read holds nils, and a value that
// is not an object where fields below it are read is built whole. Such a
// change has core.Change.PayloadPruned set and the whole body as Raw, from
// which its dead-letter record is built. Hooks (DeliveryID, Handshake)
// see whole payloads, and a delivery pruned to other paths is parsed
// again when read. When the hooks read the payload (Config.HooksReadPayload)
// the body is parsed once, whole, for them and the rules alike. FuzzPrunedPayloadRules checks that rules yield the same
// events, errors and dead-letter records on pruned and whole payloads.
//
// # Order of checks
//
// method (405), declared size (413), body read with its limit (413),
// verification (401), content type (415), body parsing (400), handshake,
// backpressure (503), inbox commit (503 on failure), answer 200. With
// AckStream the last steps are: deliveries in flight and dedup index
// (200 duplicate), backpressure (503), the stream's acknowledgement (200
// delivered, or 503 after AckTimeout).
package webhook
