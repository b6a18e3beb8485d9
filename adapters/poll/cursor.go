package poll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
)

// ParseLookBack reads a connector's look_back setting for a cursor of
// kind, as Config.LookBack (timestamp cursors: a duration such as 5m) or
// Config.LookBackCount (integer cursors: a count such as 1000). "0" and ""
// are none; a string cursor takes none.
func ParseLookBack(kind CursorKind, s string) (time.Duration, int64, error) {
	s = strings.TrimSpace(s)
	if s == "0" || s == "" {
		return 0, 0, nil
	}
	switch kind {
	case CursorTime:
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return 0, 0, fmt.Errorf("%q is not a duration such as 5m, as a timestamp cursor needs", s)
		}
		return d, 0, nil
	case CursorInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("%q is not a count such as 1000, as an integer cursor needs", s)
		}
		return 0, n, nil
	}
	return 0, 0, fmt.Errorf("a string cursor has no look-back: remove it")
}

// cursorPos is the JSON form of a cursor-mode position.
type cursorPos struct {
	C json.RawMessage `json:"c"`
	K json.RawMessage `json:"k"`
	H string          `json:"h"`
}

func (h *hasher) appendCursorPos(b []byte, c cval, kind CursorKind, key []byte, sum [16]byte) []byte {
	b = append(b, `{"c":`...)
	if kind == CursorTime {
		// Usually the time of one of the record's fields, just hashed.
		b = append(b, '"')
		b = h.appendTime(b, time.Unix(0, c.i))
		b = append(b, '"')
	} else {
		b = c.appendJSON(b, kind)
	}
	b = append(b, `,"k":`...)
	b = append(b, key...)
	b = append(b, `,"h":"`...)
	b = appendHashText(b, sum)
	return append(b, `"}`...)
}

func decodeCursorPos(p core.Position, kind CursorKind) (cval, error) {
	if p.Version != 1 {
		return cval{}, fmt.Errorf("unknown position version %d", p.Version)
	}
	var cp cursorPos
	if err := json.Unmarshal(p.Data, &cp); err != nil {
		return cval{}, err
	}
	if len(cp.C) == 0 {
		return cval{}, fmt.Errorf("position has no cursor")
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(cp.C))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return cval{}, err
	}
	return normCursor(kind, v)
}

// seenID identifies a record read in cursor mode: SHA-256 of its key,
// cursor and content hash. h's buffer is reused.
func (h *hasher) seenID(key []byte, c cval, sum [16]byte) [16]byte {
	b := append(h.buf[:0], key...)
	b = append(b, 0)
	b = strconv.AppendInt(b, c.i, 10)
	b = append(b, 0)
	b = append(b, c.s...)
	b = append(b, 0)
	b = append(b, sum[:]...)
	h.buf = b
	s := sha256.Sum256(b)
	var out [16]byte
	copy(out[:], s[:16])
	return out
}

// runCursor reads the records at or after the watermark minus the
// look-back window and emits those not seen yet.
func (s *Source) runCursor(ctx context.Context, rt time.Time) error {
	kind := s.cfg.Cursor
	req := Request{Mode: ModeCursor, RunTime: rt}
	s.mu.Lock()
	if s.hasMark {
		req.Cursor = s.lowerBound(s.mark).value(kind)
	}
	s.mu.Unlock()
	h := &hasher{}
	var pos, keyBuf []byte
	n := 0
	// The seen set is pruned during the run as the watermark climbs, so
	// that it holds about one look-back window of entries, not the run.
	pruneAt := 2*len(s.seen) + 4096
	err := s.fetch(ctx, req, func(recs []Record) error {
		changes := make([]core.Change, 0, len(recs))
		s.mu.Lock()
		for i := range recs {
			r := &recs[i]
			n++
			c, err := normCursor(kind, r.Cursor)
			if err != nil {
				s.mu.Unlock()
				return core.Fatal(fmt.Errorf("record %d (key %v): %w", n, r.Key, err))
			}
			key, err := h.appendKey(keyBuf[:0], r.Key)
			keyBuf = key
			if err != nil {
				s.mu.Unlock()
				return core.Fatal(fmt.Errorf("record %d: %w", n, err))
			}
			sum := h.sum(r.Data)
			id := h.seenID(key, c, sum)
			// A record above every seen entry is new, without a lookup.
			if s.hasSeenMax && !s.seenMax.less(c, kind) {
				if _, dup := s.seen[id]; dup {
					continue
				}
			}
			s.seen[id] = c
			if !s.hasSeenMax || s.seenMax.less(c, kind) {
				s.seenMax, s.hasSeenMax = c, true
			}
			if !s.hasMark || s.mark.less(c, kind) {
				s.mark, s.hasMark = c, true
			}
			pos = h.appendCursorPos(pos[:0], c, kind, key, sum)
			p := s.posArena.copy(pos)
			s.fifo = append(s.fifo, pending{pos: p, id: id, c: c})
			changes = append(changes, s.change(r, core.OpUpdate, p, rt))
		}
		if len(s.seen) >= pruneAt {
			s.pruneSeen()
			pruneAt = 2*len(s.seen) + 4096
		}
		s.mu.Unlock()
		return s.send(ctx, changes)
	})
	s.mu.Lock()
	s.pruneSeen()
	s.mu.Unlock()
	return err
}

// pruneSeen drops the seen entries below the look-back window of the
// watermark: no later read returns them. Callers hold mu.
func (s *Source) pruneSeen() {
	if !s.hasMark {
		return
	}
	kind := s.cfg.Cursor
	lower := s.lowerBound(s.mark)
	for id, c := range s.seen {
		if c.less(lower, kind) {
			delete(s.seen, id)
		}
	}
}

// restoreMark sets the watermark to the cursor of the checkpoint, or to
// the acknowledged one in the local state when there is none, and loads
// the seen set of the look-back window below it.
//
// The checkpoint wins even when it is behind the local watermark. The
// runtime acknowledges a position only once its checkpoint is stored, so
// the local watermark is never ahead of the stored checkpoint unless the
// checkpoint was set back: by an operator rewinding the connector to read
// rows again (as a Kafka Connect offset reset does), or by a store that
// lost its latest writes. Either way reading again from the checkpoint is
// what at-least-once asks; the rows come again with the same positions,
// so their events have the same ids. Seen entries above the watermark
// (rows read past it, which the rewind asks for again) are dropped.
func (s *Source) restoreMark(ctx context.Context, from core.Position) error {
	kind := s.cfg.Cursor
	if v, ok, err := s.st.meta(ctx, metaMark); err != nil {
		return err
	} else if ok {
		if kind == CursorString {
			s.mark = cval{s: v}
		} else {
			n, _ := strconv.ParseInt(v, 10, 64)
			s.mark = cval{i: n}
		}
		s.hasMark = true
	}
	if !from.IsZero() {
		c, err := decodeCursorPos(from, kind)
		if err != nil {
			return core.Fatal(fmt.Errorf("checkpoint %s is not a cursor-mode position of a %s cursor (reset the connector's checkpoint to start over): %w", from, kind, err))
		}
		if s.hasMark && c.less(s.mark, kind) {
			s.log.Info("poll watermark set back to the stored checkpoint; the rows after it are read again",
				"watermark", s.mark.value(kind), "checkpoint", c.value(kind))
		}
		s.mark, s.hasMark = c, true
	}
	s.ackMark, s.hasAck = s.mark, s.hasMark
	if !s.hasMark {
		return nil
	}
	seen, err := s.st.loadSeen(ctx, kind, s.lowerBound(s.mark))
	if err != nil {
		return err
	}
	s.seen = seen
	for id, c := range seen {
		if s.mark.less(c, kind) {
			delete(seen, id)
			continue
		}
		if !s.hasSeenMax || s.seenMax.less(c, kind) {
			s.seenMax, s.hasSeenMax = c, true
		}
	}
	return nil
}

func (s *Source) lowerBound(c cval) cval {
	return c.minus(s.cfg.Cursor, s.cfg.LookBack, s.cfg.LookBackCount)
}
