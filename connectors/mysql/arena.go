package mysql

import (
	"strings"
	"unsafe"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// arena hands out the bytes of the strings and positions of the changes
// the reader decodes from 4 KiB blocks, rather than an allocation for
// each: a row's text values and its position cost one allocation per
// block, not three per row. Bytes handed out are written once, before
// anything reads them, and never again, so strings can point into them.
// A block lives as long as any of its strings or positions does: the
// changes of a few rows events, in flight together (max_in_flight bounds
// them).
//
// The zero value is ready; a nil *arena allocates each value on its own.
type arena struct {
	buf []byte
}

const (
	// arenaBlock is the size of a block.
	arenaBlock = 4096
	// arenaMax is the longest value taken from a block; a longer one is
	// allocated on its own, so that it pins no block, nor a block it.
	arenaMax = 256
)

// room returns n bytes of the arena, empty, with capacity n.
func (a *arena) room(n int) []byte {
	if a == nil || n > arenaMax {
		return make([]byte, 0, n)
	}
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, arenaBlock)
	}
	at := len(a.buf)
	a.buf = a.buf[:at+n]
	return a.buf[at : at : at+n]
}

// string returns a copy of s.
func (a *arena) string(s string) string {
	if len(s) == 0 {
		return ""
	}
	if a == nil || len(s) > arenaMax {
		return strings.Clone(s)
	}
	b := append(a.room(len(s)), s...)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// position returns cdc.StreamPosition(commit, index).
func (a *arena) position(commit string, index int) core.Position {
	// 15 bytes of JSON around the commit, and an int of up to 20 digits.
	return cdc.AppendStreamPosition(a.room(15+len(commit)+20), commit, index)
}
