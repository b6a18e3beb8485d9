package audit

import (
	"encoding/binary"
	"math/bits"
)

// A bloom is a blocked Bloom filter of the ids of one id run: every key
// sets bloomProbes bits in one 512-bit block (one cache line), so that a
// lookup costs one memory miss however large the run. It answers "maybe"
// for every id of its run and, for an id of none, "no" but for about 0.3%
// of them. Its bits are stored with the run (the bloom column of the run
// catalog), so a log opens without reading its runs; the hash is fixed
// (FNV-1a, mixed), so the stored bits stay valid across processes and
// versions.
type bloom struct {
	blocks []uint64 // 8 words a block
}

// bloomBitsPerKey is the filter's size: 14 bits an id, about 1.75 bytes.
const bloomBitsPerKey = 14

// bloomProbes is how many bits of its block a key sets.
const bloomProbes = 9

// newBloom returns an empty filter sized for n ids.
func newBloom(n int) *bloom {
	nblocks := (n*bloomBitsPerKey + 511) / 512
	if nblocks < 1 {
		nblocks = 1
	}
	return &bloom{blocks: make([]uint64, nblocks*8)}
}

// bloomFromBytes returns the filter whose bits are b (from bytes); nil
// when b is not a filter's bits.
func bloomFromBytes(b []byte) *bloom {
	if len(b) == 0 || len(b)%64 != 0 {
		return nil
	}
	f := &bloom{blocks: make([]uint64, len(b)/8)}
	for i := range f.blocks {
		f.blocks[i] = binary.LittleEndian.Uint64(b[i*8:])
	}
	return f
}

// bytes returns the filter's bits, as bloomFromBytes takes them.
func (f *bloom) bytes() []byte {
	out := make([]byte, len(f.blocks)*8)
	for i, w := range f.blocks {
		binary.LittleEndian.PutUint64(out[i*8:], w)
	}
	return out
}

// idHash returns the 64-bit hash of an id the filters use.
func idHash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	// splitmix64's finaliser: FNV's high bits alone are poorly mixed.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// block returns the first word of the block of hash h.
func (f *bloom) block(h uint64) int {
	hi, _ := bits.Mul64(h, uint64(len(f.blocks)/8))
	return int(hi) * 8
}

// add sets the bits of hash h.
func (f *bloom) add(h uint64) {
	b := f.block(h)
	g := bits.RotateLeft64(h, 32) | 1
	for range bloomProbes {
		g = g*0x9e3779b97f4a7c15 + 1
		bit := g >> 55 // 9 bits: 0..511
		f.blocks[b+int(bit>>6)] |= 1 << (bit & 63)
	}
}

// has reports whether hash h may be in the filter.
func (f *bloom) has(h uint64) bool {
	b := f.block(h)
	g := bits.RotateLeft64(h, 32) | 1
	for range bloomProbes {
		g = g*0x9e3779b97f4a7c15 + 1
		bit := g >> 55
		if f.blocks[b+int(bit>>6)]&(1<<(bit&63)) == 0 {
			return false
		}
	}
	return true
}
