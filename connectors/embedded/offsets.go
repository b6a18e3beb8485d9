package embedded

import (
	"context"
	"fmt"

	"github.com/tributary/tributary/core/runtime"
)

var _ runtime.GroupOffsets = (*Stream)(nil)

// lagSQL counts a topic's stored messages after an offset (a topic's
// batches hold consecutive offsets and never overlap) and finds its last
// one, with one seek of batches_topic_last.
const lagSQL = `SELECT COALESCE(SUM(last_offset - MAX(first_offset - 1, ?1)), 0), COALESCE(MAX(last_offset), 0)
	FROM batches WHERE topic = ?2 AND last_offset > ?1`

// CommittedOffsets returns the offsets group committed on topics, each on
// partition 0: the offset after the last message the group acked, the
// offset after the topic's last stored message and how many stored
// messages lie between. Offsets are shared by all topics of the stream,
// so End-Offset counts the other topics' messages too; Lag does not. A
// topic the group never acked a message of is left out. It is safe for
// concurrent use.
func (s *Stream) CommittedOffsets(ctx context.Context, group string, topics []string) ([]runtime.PartitionOffset, error) {
	st := s.store()
	if st == nil {
		return nil, fmt.Errorf("offsets of group %q: %w", group, ErrNotOpen)
	}
	if st.isClosed() {
		return nil, fmt.Errorf("offsets of group %q: %w", group, ErrClosed)
	}
	var out []runtime.PartitionOffset
	for _, topic := range topics {
		off, ok, err := st.committed(ctx, group, topic)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		var lag, last int64
		if err := st.rdb.QueryRowContext(ctx, lagSQL, off, topic).Scan(&lag, &last); err != nil {
			return nil, fmt.Errorf("count the messages of topic %q after offset %d in stream database %q: %w", topic, off, st.file, err)
		}
		end := max(last, off) + 1
		out = append(out, runtime.PartitionOffset{Topic: topic, Partition: 0, Offset: off + 1, End: end, Lag: lag})
	}
	return out, nil
}
