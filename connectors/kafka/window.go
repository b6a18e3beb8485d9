package kafka

import (
	"github.com/IBM/sarama"

	"github.com/tributary/tributary/core"
)

// newWindow returns the empty window of a partition's delivered records,
// at most size of them (see core.AckWindow). mark, when not nil, is told
// the last record of the run of acked records from the start whenever it
// grows, in offset order.
func newWindow(size int, mark func(*sarama.ConsumerMessage)) *core.AckWindow[*sarama.ConsumerMessage] {
	return core.NewAckWindow(size, recordOffset, mark)
}

func recordOffset(km *sarama.ConsumerMessage) int64 { return km.Offset }
