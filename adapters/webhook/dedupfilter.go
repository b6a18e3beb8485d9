package webhook

import (
	"encoding/binary"
	"math/bits"
)

// filterBitsPerID is the size of a dedup run's filter: 10 bits an id give
// a blocked Bloom filter with 7 probes a false positive rate of about 1%.
const filterBitsPerID = 10

// filterProbes is how many bits of its block an id sets.
const filterProbes = 7

// dedupFilter is a blocked Bloom filter of digests: each digest picks one
// 512-bit block (one cache line) and sets filterProbes bits in it, so a
// lookup costs one memory access. Digests are SHA-256 prefixes, uniform
// already, so their bytes are the hashes: the first 8 pick the block, the
// next 8 the bits.
type dedupFilter struct {
	words   []uint64
	nblocks uint64
}

// newDedupFilter returns an empty filter sized for n digests.
func newDedupFilter(n int) dedupFilter {
	nb := uint64(max(1, (n*filterBitsPerID+511)/512))
	return dedupFilter{words: make([]uint64, nb*8), nblocks: nb}
}

func (f *dedupFilter) block(d *digest) ([]uint64, uint64) {
	hi, _ := bits.Mul64(binary.LittleEndian.Uint64(d[:8]), f.nblocks)
	return f.words[hi*8 : hi*8+8 : hi*8+8], binary.LittleEndian.Uint64(d[8:])
}

// add puts d in the filter.
func (f *dedupFilter) add(d *digest) {
	blk, h := f.block(d)
	for range filterProbes {
		bit := h & 511
		blk[bit>>6] |= 1 << (bit & 63)
		h >>= 9
	}
}

// has reports whether d may be in the filter: false means it is not.
func (f *dedupFilter) has(d *digest) bool {
	blk, h := f.block(d)
	for range filterProbes {
		bit := h & 511
		if blk[bit>>6]&(1<<(bit&63)) == 0 {
			return false
		}
		h >>= 9
	}
	return true
}

// bytes is the filter's memory.
func (f *dedupFilter) bytes() int { return len(f.words) * 8 }
