package kafka

import (
	"testing"

	"github.com/IBM/sarama"
)

// TestMurmur2 checks the hash against the values Kafka's own
// UtilsTest.testMurmur2 pins for the Java client.
func TestMurmur2(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int32
	}{
		{name: "two bytes", in: "21", want: -973932308},
		{name: "six bytes", in: "foobar", want: -790332482},
		{name: "24 bytes", in: "a-little-bit-long-string", want: -985981536},
		{name: "26 bytes", in: "a-little-bit-longer-string", want: -1486304829},
		{name: "48 bytes", in: "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", want: -58897971},
		{name: "three bytes", in: "abc", want: 479470107},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := int32(murmur2([]byte(tc.in))); got != tc.want {
				t.Fatalf("murmur2(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestJavaPartitioner(t *testing.T) {
	p := newJavaPartitioner("t")
	// Java: Utils.toPositive(Utils.murmur2("foobar".getBytes())) % 12.
	hash := int32(-790332482)
	want := (hash & 0x7fffffff) % 12
	got, err := p.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder("foobar")}, 12)
	if err != nil || got != want {
		t.Fatalf("partition of foobar = %d, %v; want %d", got, err, want)
	}
	for range 100 {
		part, err := p.Partition(&sarama.ProducerMessage{}, 3)
		if err != nil || part < 0 || part >= 3 {
			t.Fatalf("keyless partition %d, %v", part, err)
		}
	}
	if !p.RequiresConsistency() {
		t.Fatal("a hash partitioner must require consistency")
	}
}
