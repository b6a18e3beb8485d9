package kafka

import (
	"github.com/IBM/sarama"
)

// javaPartitioner places keyed records exactly as the Java client's default
// partitioner does (murmur2 of the key bytes, sign bit cleared, modulo the
// partition count), so that a key lands on the same partition whether a
// Tributary sidecar, a Java producer or a Kafka Streams application writes
// it, and co-partitioned joins work. Records without a key go to a random
// partition.
type javaPartitioner struct {
	random sarama.Partitioner
}

var _ sarama.Partitioner = (*javaPartitioner)(nil)

func newJavaPartitioner(topic string) sarama.Partitioner {
	return &javaPartitioner{random: sarama.NewRandomPartitioner(topic)}
}

// Partition returns the partition of msg among numPartitions.
func (p *javaPartitioner) Partition(msg *sarama.ProducerMessage, numPartitions int32) (int32, error) {
	if msg.Key == nil {
		return p.random.Partition(msg, numPartitions)
	}
	key, err := msg.Key.Encode()
	if err != nil {
		return -1, err
	}
	return int32(murmur2(key)&0x7fffffff) % numPartitions, nil
}

// RequiresConsistency reports that a key must always map to one partition,
// which keeps per-key order across retries.
func (p *javaPartitioner) RequiresConsistency() bool { return true }

// murmur2 is the 32-bit MurmurHash2 variant of Kafka's Utils.murmur2.
func murmur2(data []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(data)
	h := uint32(seed) ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
