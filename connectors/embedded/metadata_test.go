package embedded

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/klauspost/compress/s2"
)

// These tests are internal: the batch and metadata encodings are not
// exported.

var metadataCases = []struct {
	name string
	md   map[string]string
}{
	{name: "empty", md: map[string]string{}},
	{name: "plain", md: map[string]string{"ce_type": "com.example.order.accepted", "ce_partitionkey": "order-1", "": ""}},
	{name: "escapes", md: map[string]string{"q": `say "hi" \ bye`, "ctl": "a\nb\tc\rd\x00\x1f"}},
	{name: "unicode", md: map[string]string{"ключ": "värde ✓ 😀"}},
}

func TestMetadataEncoding(t *testing.T) {
	for _, tt := range metadataCases {
		t.Run(tt.name, func(t *testing.T) {
			enc := encodeMetadata(tt.md)
			if n, ok := metadataLen(enc); !ok || n != len(enc) {
				t.Fatalf("metadataLen of %q = %d, %v; want %d, true", enc, n, ok, len(enc))
			}
			if got := decodeBinaryMetadata(enc); !maps.Equal(got, tt.md) {
				t.Errorf("round trip of %q gave %q", tt.md, got)
			}
		})
	}
}

// TestJSONMetadataDecoding checks the decoding of version 1 metadata,
// whose fast path must agree with encoding/json.
func TestJSONMetadataDecoding(t *testing.T) {
	for _, tt := range metadataCases {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := json.Marshal(tt.md)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeJSONMetadata(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.md) {
				t.Errorf("decoding %s gave %q", enc, got)
			}
		})
	}
}

func FuzzMetadataEncoding(f *testing.F) {
	f.Add("ce_type", "x", "k2", "a\"b")
	f.Add("", "", "\\", "\n")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		md := map[string]string{k1: v1, k2: v2}
		if got := decodeBinaryMetadata(encodeMetadata(md)); !maps.Equal(got, md) {
			t.Errorf("round trip of %q gave %q", md, got)
		}
		for _, s := range []string{k1, v1, k2, v2} {
			if !utf8.ValidString(s) {
				return // encoding/json replaces invalid UTF-8
			}
		}
		enc, err := json.Marshal(md)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeJSONMetadata(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, md) {
			t.Errorf("JSON decoding of %s gave %q", enc, got)
		}
	})
}

func TestBatchEncoding(t *testing.T) {
	rows := []row{
		{uuid: "a", metadata: encodeMetadata(map[string]string{"k": "v"}), payload: []byte("one")},
		{uuid: "", metadata: emptyMetadata, payload: nil},
		{uuid: "c", metadata: encodeMetadata(map[string]string{"x": "", "": "y"}), payload: make([]byte, 300)},
	}
	tests := []struct {
		name    string
		offsets []int64
		after   int64
		want    []int64
	}{
		{name: "contiguous", offsets: []int64{10, 11, 12}, after: 0, want: []int64{10, 11, 12}},
		{name: "contiguous skipping", offsets: []int64{10, 11, 12}, after: 11, want: []int64{12}},
		{name: "listed", offsets: []int64{3, 7, 200}, after: 0, want: []int64{3, 7, 200}},
		{name: "listed skipping", offsets: []int64{3, 7, 200}, after: 5, want: []int64{7, 200}},
		{name: "all read", offsets: []int64{3, 7, 200}, after: 200, want: nil},
	}
	for _, tt := range tests {
		for _, compressed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s compressed=%v", tt.name, compressed), func(t *testing.T) {
				blob := encodeBatch(rows, tt.offsets)
				if compressed {
					raw := len(blob)
					blob = (&store{}).compressBatch(blob)
					if blob[0] != batchFormatS2 || len(blob) >= raw {
						t.Fatalf("compressed batch: format %d, %d bytes of %d", blob[0], len(blob), raw)
					}
				}
				checkBatch(t, rows, tt.offsets, tt.after, tt.want, blob)
			})
		}
	}
}

func checkBatch(t *testing.T, rows []row, offsets []int64, after int64, want []int64, blob []byte) {
	t.Helper()
	got, err := decodeBatch(nil, blob, offsets[0], after)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for _, m := range got {
		offs = append(offs, m.offset)
		r := rows[indexOf(offsets, m.offset)]
		if m.uuid != r.uuid || string(m.payload) != string(r.payload) || string(m.metadata) != string(r.metadata) {
			t.Errorf("message at %d = %+v, want %+v", m.offset, m, r)
		}
	}
	if !reflect.DeepEqual(offs, want) {
		t.Errorf("offsets after %d = %v, want %v", after, offs, want)
	}
}

// TestIncompressibleBatchStaysRaw checks that a batch compression would not
// shrink is stored as it is.
func TestIncompressibleBatchStaysRaw(t *testing.T) {
	payload := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	blob := encodeBatch([]row{{uuid: "a", metadata: emptyMetadata, payload: payload}}, []int64{1})
	if got := (&store{}).compressBatch(blob); &got[0] != &blob[0] {
		t.Fatalf("random payload compressed to %d of %d bytes, format %d", len(got), len(blob), got[0])
	}
}

func indexOf(s []int64, v int64) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestBatchCorrupt(t *testing.T) {
	good := encodeBatch([]row{{uuid: "a", metadata: encodeMetadata(map[string]string{"k": "v"}), payload: []byte("p")}}, []int64{1})
	goodS2 := append([]byte{batchFormatS2}, s2.Encode(nil, good)...)
	tests := []struct {
		name string
		blob []byte
	}{
		{name: "empty", blob: nil},
		{name: "newer format", blob: append([]byte{batchFormatS2 + 1}, good[1:]...)},
		{name: "compressed garbage", blob: []byte{batchFormatS2, 9, 1, 2, 3}},
		{name: "compressed truncated", blob: goodS2[:len(goodS2)-1]},
		{name: "compressed twice", blob: append([]byte{batchFormatS2}, s2.Encode(nil, goodS2)...)},
		{name: "compressed empty", blob: []byte{batchFormatS2}},
		{name: "unknown offsets kind", blob: append([]byte{batchFormat, 9}, good[2:]...)},
		{name: "truncated", blob: good[:len(good)-1]},
		{name: "trailing bytes", blob: append(append([]byte{}, good...), 0)},
		{name: "bad metadata", blob: []byte{batchFormat, offsetsContiguous, 1, 3, 0, 5, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeBatch(nil, tt.blob, 1, 0); !errors.Is(err, errCorrupt) {
				t.Errorf("decode = %v, want errCorrupt", err)
			}
		})
	}
}

func FuzzBatchDecoding(f *testing.F) {
	f.Add(encodeBatch([]row{{uuid: "a", metadata: emptyMetadata, payload: []byte("p")}}, []int64{1}))
	f.Add(encodeBatch([]row{{uuid: "a", metadata: emptyMetadata}, {uuid: "b", metadata: emptyMetadata}}, []int64{1, 5}))
	f.Add((&store{}).compressBatch(encodeBatch([]row{{uuid: "a", metadata: emptyMetadata, payload: make([]byte, 100)}}, []int64{1})))
	f.Fuzz(func(t *testing.T, blob []byte) {
		msgs, err := decodeBatch(nil, blob, 1, 0)
		if err != nil {
			return
		}
		for _, m := range msgs {
			_ = decodeBinaryMetadata(m.metadata)
		}
	})
}
