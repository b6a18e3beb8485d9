package webhook

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The dedup index of the inbox: delivery ids in memory by generation,
// rebuilt when the inbox opens from the seen files (the ids of deleted
// segments) and the segments, and the seen files' upkeep.

// seenGen is a dedup generation: the ids accepted since start, by digest.
type seenGen struct {
	start time.Time
	path  string // "" for an empty generation with no file
	ids   map[digest]struct{}
}

// digest identifies a delivery id in memory: the first 16 bytes of its
// SHA-256, so that the dedup index costs a fixed, pointer-free entry per
// id whatever the id's length (two distinct ids share one with a
// probability of about n²/2¹²⁹).
type digest [16]byte

func digestOf(id string) digest {
	sum := sha256.Sum256([]byte(id))
	return digest(sum[:16])
}

// seen reports whether id was accepted within the dedup generations.
func (ib *inbox) seen(d digest) bool {
	if _, ok := ib.cur.ids[d]; ok {
		return true
	}
	_, ok := ib.old.ids[d]
	return ok
}

// remember puts an id accepted at t into the generation of t; an id older
// than both is forgotten.
func (ib *inbox) remember(id string, t time.Time) {
	switch {
	case !t.Before(ib.cur.start):
		ib.cur.ids[digestOf(id)] = struct{}{}
	case !t.Before(ib.old.start):
		ib.old.ids[digestOf(id)] = struct{}{}
	}
}

// loadSeen keeps the two newest seen files (deleting older ones), loads
// their ids and opens the newest for appending; without one, it starts the
// first generation now.
func (ib *inbox) loadSeen() error {
	nums, err := listed(ib.dir, "seen-")
	if err != nil {
		return err
	}
	for len(nums) > 2 {
		if err := os.Remove(filepath.Join(ib.dir, fmt.Sprintf("seen-%020d.log", nums[0]))); err != nil {
			return err
		}
		nums = nums[1:]
	}
	ib.old = &seenGen{ids: map[digest]struct{}{}}
	if len(nums) == 0 {
		return ib.newGeneration(ib.now())
	}
	type loaded struct {
		gen  *seenGen
		data []byte
		end  int64
	}
	var gens []loaded
	for _, n := range nums {
		path := filepath.Join(ib.dir, fmt.Sprintf("seen-%020d.log", n))
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		p, rest, ok := nextFrame(data)
		if !ok || p[0] != frameSeenGen {
			// A generation whose creation a crash cut: it holds nothing.
			if err := os.Remove(path); err != nil {
				return err
			}
			continue
		}
		d := decoder{b: p[1:]}
		g := &seenGen{start: time.Unix(0, d.varint()), path: path, ids: map[digest]struct{}{}}
		gens = append(gens, loaded{gen: g, data: rest, end: int64(len(data) - len(rest))})
	}
	if len(gens) == 0 {
		return ib.newGeneration(ib.now())
	}
	ib.cur = gens[len(gens)-1].gen
	if len(gens) == 2 {
		ib.old = gens[0].gen
	}
	for i := range gens {
		g := &gens[i]
		data := g.data
		for {
			p, rest, ok := nextFrame(data)
			if !ok {
				break
			}
			g.end += int64(len(data) - len(rest))
			data = rest
			if p[0] != frameSeenIDs {
				continue
			}
			d := decoder{b: p[1:]}
			for len(d.b) > 0 && d.err == nil {
				t := time.Unix(0, d.varint())
				id := d.str()
				if d.err == nil {
					ib.remember(id, t)
				}
			}
			if d.err != nil {
				return fmt.Errorf("read %s: %w", g.gen.path, d.err)
			}
		}
	}
	last := gens[len(gens)-1]
	f, err := os.OpenFile(last.gen.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	// Cut a tail a crash left, so that appended frames follow valid ones.
	if err := f.Truncate(last.end); err != nil {
		f.Close()
		return err
	}
	ib.seenF, ib.seenOff = f, last.end
	return nil
}

// newGeneration starts a dedup generation at start with an empty seen
// file, dropping the older one.
func (ib *inbox) newGeneration(start time.Time) error {
	first, _ := beginFrame(nil, frameSeenGen)
	first = binary.AppendVarint(first, start.UnixNano())
	first = endFrame(first, 0)
	path := seenPath(ib.dir, start)
	f, err := createLog(path, first)
	if err != nil {
		return fmt.Errorf("start dedup generation: %w", err)
	}
	if ib.seenF != nil {
		_ = ib.seenF.Close()
	}
	if ib.cur != nil {
		if ib.old.path != "" {
			if err := os.Remove(ib.old.path); err != nil {
				ib.log.Warn("webhook inbox: remove old dedup generation", "file", ib.old.path, "error", err)
			}
		}
		ib.old = ib.cur
	}
	ib.cur = &seenGen{start: start, path: path, ids: map[digest]struct{}{}}
	ib.seenF, ib.seenOff = f, int64(len(first))
	return nil
}

// compact moves the ids of acknowledged segments to the current seen file
// and deletes the segments. The acknowledgement is made durable first, so
// that a crash never finds deliveries missing that it would replay.
func (ib *inbox) compact(segs []*segment) error {
	if err := ib.sync(); err != nil {
		return err
	}
	var buf []byte
	for _, s := range segs {
		if len(s.ids) == 0 {
			continue
		}
		var start int
		buf, start = beginFrame(buf, frameSeenIDs)
		buf = append(buf, s.ids...)
		buf = endFrame(buf, start)
	}
	if len(buf) > 0 {
		if _, err := ib.seenF.WriteAt(buf, ib.seenOff); err != nil {
			_ = ib.seenF.Truncate(ib.seenOff)
			return fmt.Errorf("write %s: %w", ib.cur.path, err)
		}
		if err := datasync(ib.seenF); err != nil {
			_ = ib.seenF.Truncate(ib.seenOff)
			return fmt.Errorf("sync %s: %w", ib.cur.path, err)
		}
		ib.seenOff += int64(len(buf))
	}
	for _, s := range segs {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		s.ids = nil
	}
	return nil
}
