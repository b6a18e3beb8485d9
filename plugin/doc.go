// Package plugin is the versioned contract between a Tributary sidecar and a
// connector running in its own process, and the Go helpers that make such a
// connector as short as a compiled-in one:
//
//	func main() { plugin.Serve(mysource.New()) }
//
// The source is a core.Source, exactly as for a compiled-in connector; Serve
// speaks the plugin protocol on its behalf, over gRPC on a Unix socket
// (through hashicorp/go-plugin) or over JSON Lines on stdin and stdout,
// whichever the sidecar asks for. Connectors in other languages speak the
// JSON Lines form directly; PROTOCOL.md in this folder specifies it.
//
// A sink runs in its own process the same way:
//
//	func main() { plugin.ServeSink(mysink.New()) }
//
// where the sink is a core.Sink; the sidecar sends it the events to
// deliver and takes its per-event results (PROTOCOL.md, "Sinks"). A sink
// that also implements SinkTarget lets `tributary plugin test` run the
// sink conformance kit against it.
//
// The protocol is versioned by ProtocolVersion and negotiated in the hello
// exchange. It grows only by new optional message types and fields, which
// a peer that does not know them ignores; anything else is a new version.
// The sidecar end lives in connectors/plugin.
package plugin
