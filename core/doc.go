// Package core holds the contracts every Tributary component shares: the
// canonical domain [Event], the [Change] an adapter observes, the [Source]
// and [Stream] contracts the runtime drives, checkpoint tracking, and the
// connector [Registry].
//
// The flow is
//
//	legacy system -> Source -> Change -> rules -> Event(s) -> catalog -> Stream
//
// and a source's position is committed only after every event derived from
// it, and from every change before it, is durably acknowledged by the
// stream. Sub-packages hold the rules engine (core/rules), the catalog of
// event schemas (core/catalog), the runtime (core/runtime), an in-memory
// stream (core/memstream) and the conformance kit (core/conformance).
//
// core imports libraries only: it knows no adapter, connector or stream
// implementation.
package core
