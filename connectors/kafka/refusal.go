package kafka

import (
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/tributary/tributary/core"
)

// A broker refuses a record batch either because it cannot take it now (it
// is not the partition's leader, too few replicas are in sync, a quota is
// spent), which a retry outlives, or because of what the records are:
// larger than the topic takes, without the key a compacted topic needs,
// stamped outside the accepted time range. Sending such records again
// fails again, so their calls fail with an error wrapping
// core.Permanent, which the runtime dead-letters instead of retrying.
//
// A refusal is about the whole batch, which holds the records of several
// calls. The producer splits a refused batch of more than one record in
// two and sends the halves (a batch of small records may be refused only
// for its total size), until the refusal falls on single records: the
// calls that own a refused record fail as permanent, the records before
// it are stored, and those after it on the partition fail, not as
// permanent, so that none overtakes it (see ordering.go).

// refusal returns what the user can do about err when err is a broker's
// refusal of records for what they are, and ok false for any other error
// (those are retried). It matches sarama's errors with errors.Is, so that
// it classifies sarama's producer errors as well as the answers this
// producer reads itself.
func refusal(err error) (hint string, ok bool) {
	switch {
	case errors.Is(err, sarama.ErrMessageSizeTooLarge):
		return "it is larger than the topic's max.message.bytes or the broker's message.max.bytes allows: raise that limit, or publish smaller events", true
	case errors.Is(err, sarama.ErrMessageSetSizeTooLarge):
		return "it is larger than the topic's segment.bytes: raise it, or publish smaller events", true
	case errors.Is(err, sarama.ErrInvalidRecord):
		return "the topic's settings do not admit it: a compacted topic, for one, takes only records with a key, so give the events a partition key", true
	case errors.Is(err, sarama.ErrInvalidMessage):
		return "it failed the broker's checksum or format checks", true
	case errors.Is(err, sarama.ErrInvalidTimestamp):
		return "its timestamp is further from the broker's clock than the topic's message.timestamp.*.max.ms allow: check this machine's clock", true
	}
	return "", false
}

// refusedError returns the permanent error of a record that broker refused
// with code, on partition pt, in a batch of size bytes, and its cause (the
// same without the topic, the partition and the permanence), which the
// records queued behind it fail with (see ordering.go).
func refusedError(pt *partition, broker int32, size int, code error, hint string) (err, cause error) {
	cause = fmt.Errorf("broker %d refused the record (%d bytes in its batch): %w; %s", broker, size, code, hint)
	return core.Permanent(fmt.Errorf("publish to kafka topic %q partition %d: %w", pt.topic, pt.id, cause)), cause
}

// tooLargeError returns the permanent error of a record that takes size
// bytes in a batch of its own, which is more than the producer sends, and
// its cause as refusedError does.
func tooLargeError(pt *partition, size, limit int) (err, cause error) {
	cause = fmt.Errorf("refused before sending: the record takes %d bytes in a batch, more than the producer's limit of %d bytes (1 MiB, or batch_max_bytes when higher); raise batch_max_bytes, and the topic's max.message.bytes, to publish larger events",
		size, limit)
	return core.Permanent(fmt.Errorf("publish to kafka topic %q partition %d: %w", pt.topic, pt.id, cause)), cause
}

// tooLarge reports whether a record with these fields, alone in a batch,
// is larger than the producer sends, and the size of that batch.
func (p *producer) tooLarge(key, value []byte, nh, headerBytes int) (size int, refused bool) {
	// A record's fields other than key, value and headers take a few
	// dozen bytes: only a record that comes near the limit is measured.
	if len(key)+len(value)+headerBytes+batchOverhead+64 <= p.opts.maxBatchBytes {
		return 0, false
	}
	_, total := recordLen(0, 0, key, value, nh, headerBytes)
	return batchOverhead + total, batchOverhead+total > p.opts.maxBatchBytes
}

// split replaces the first ready batch of pt, which holds more than one
// record, with two batches of half its records each, whose calls are
// counted as in the batch they come from. The batch had been refused, so
// no sequence numbers were used up: the halves get theirs when they are
// sent. Called with p.mu held.
func (p *producer) split(pt *partition) {
	b := pt.ready[0]
	half := b.n / 2
	first, second := p.newBatch(b.firstTS, b.created), p.newBatch(b.firstTS, b.created)
	var headers []sarama.RecordHeader
	for i, r := range b.rb.Records {
		dst := first
		if int32(i) >= half {
			dst = second
		}
		ts := b.firstTS + r.TimestampDelta.Milliseconds()
		if dst.n == 0 {
			dst.firstTS, dst.maxTS = ts, ts
		}
		headers = headers[:0]
		for _, h := range r.Headers {
			headers = append(headers, *h)
		}
		_, total := recordLen(dst.n, ts-dst.firstTS, r.Key, r.Value, len(headers), headersLen(headers))
		dst.add(r.Key, r.Value, headers, ts, false) // b, whose arena may hold them, is recycled
		dst.size += total
	}
	left := int(half)
	for _, a := range b.acks {
		if m := min(a.n, left); m > 0 {
			first.acks = append(first.acks, batchAck{c: a.c, n: m})
			left -= m
			a.n -= m
		}
		if a.n > 0 {
			second.acks = append(second.acks, batchAck{c: a.c, n: a.n})
		}
	}
	p.buffered += first.size + second.size - b.size
	ready := make([]*batch, 0, len(pt.ready)+1)
	ready = append(ready, first, second)
	pt.ready = append(ready, pt.ready[1:]...)
	pt.retries, pt.retryAt = 0, time.Time{}
	p.recycle(b)
}
