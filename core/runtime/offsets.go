package runtime

import (
	"context"
	"errors"
	"fmt"
)

// GroupOffsets is an optional capability of a stream (core.Stream): the
// offsets a consumer group committed. CommittedOffsets returns, for each
// of topics, the group's committed offset on every partition it
// committed on (the next offset the group reads), with the partition's
// end and the group's lag there, bounded by ctx. A topic or partition the
// group never committed on is left out. It only reads: it is safe for
// concurrent use and to repeat.
type GroupOffsets interface {
	CommittedOffsets(ctx context.Context, group string, topics []string) ([]PartitionOffset, error)
}

// PartitionOffset is a consumer group's committed offset on one partition
// of a topic, with the partition's end. The embedded stream has one
// partition per topic, 0, and offsets shared by all its topics, so that
// there End-Offset is not a count of events: Lag is.
type PartitionOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Offset is the next offset the group reads: it has read every event
	// before it.
	Offset int64 `json:"offset"`
	// End is the offset after the last event stored on the partition (the
	// high water mark), as the stream answered at the same time.
	End int64 `json:"end"`
	// Lag is how many events stored on the partition the group has yet to
	// read (from Offset to End).
	Lag int64 `json:"lag"`
}

// ErrNoOffsets is returned by SinkOffsets when the stream does not expose
// its consumer groups' offsets (it does not implement GroupOffsets).
var ErrNoOffsets = errors.New("the stream does not expose its consumer groups' committed offsets")

// SinkOffsets is a sink's consumer group and, where the stream exposes
// them, its committed offsets.
type SinkOffsets struct {
	Sink    string            `json:"sink"`
	Group   string            `json:"group"`
	Topics  []string          `json:"topics"`
	Offsets []PartitionOffset `json:"offsets"`
}

// SinkOffsets returns the named sink's consumer group, the topics it
// reads and the offsets the group committed on them. With a stream that
// does not implement GroupOffsets it returns the group and topics with an
// error wrapping ErrNoOffsets. An unknown name is an error wrapping
// ErrNoSink.
func (r *Runtime) SinkOffsets(ctx context.Context, name string) (SinkOffsets, error) {
	var s *sinkRunner
	for _, sr := range r.sinkList() {
		if sr.cfg.Name == name {
			s = sr
		}
	}
	if s == nil {
		return SinkOffsets{}, fmt.Errorf("%w named %q", ErrNoSink, name)
	}
	out := SinkOffsets{Sink: name, Group: SinkGroupPrefix + name, Topics: s.topics, Offsets: []PartitionOffset{}}
	if s.topicsErr != nil {
		return out, s.topicsErr
	}
	g, ok := r.opts.Stream.(GroupOffsets)
	if !ok {
		return out, fmt.Errorf("offsets of sink %q (consumer group %q): %w", name, out.Group, ErrNoOffsets)
	}
	offs, err := g.CommittedOffsets(ctx, out.Group, s.topics)
	if err != nil {
		return out, fmt.Errorf("offsets of sink %q (consumer group %q): %w", name, out.Group, err)
	}
	if offs != nil {
		out.Offsets = offs
	}
	return out, nil
}
