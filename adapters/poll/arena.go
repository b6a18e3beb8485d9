package poll

// arena hands out read-only copies of short byte strings from shared
// blocks: one allocation per block rather than per position. A block stays
// in memory while any position in it does.
type arena struct{ block []byte }

const arenaBlock = 64 << 10

func (a *arena) copy(b []byte) []byte { return arenaCopy(a, b) }

// copyString is copy for a string.
func (a *arena) copyString(s string) []byte { return arenaCopy(a, s) }

// arenaCopy copies b into a block of a.
func arenaCopy[T string | []byte](a *arena, b T) []byte {
	if cap(a.block)-len(a.block) < len(b) {
		if len(b) > arenaBlock/8 {
			return append([]byte(nil), b...)
		}
		a.block = make([]byte, 0, arenaBlock)
	}
	start := len(a.block)
	a.block = append(a.block, b...)
	return a.block[start:len(a.block):len(a.block)]
}
