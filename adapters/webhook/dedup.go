package webhook

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The dedup index of the inbox: the delivery ids accepted within the dedup
// window, by digest. The newest ids are held in memory (the hot set), up
// to hotLimit ids or sealAge of acceptance times; then they are sealed
// into a run: an immutable file of the sorted digests, fsynced and renamed
// into place. Each run keeps in memory a blocked Bloom filter (10 bits an
// id) and a sparse index (the first digest of every block of runBlock
// digests), so a lookup of a fresh id costs a filter probe per run, and
// only a filter hit (a duplicate, or about 1% of fresh ids) reads one
// block of the file. A run whose newest id is older than the window is
// deleted; the runs of one slot of the window are merged in the
// background, so that their number stays small.

// Defaults of the dedup index.
const (
	// defaultHotLimit bounds the ids held in memory before they are
	// sealed into a run: 32Ki ids, about 1.1 MB of map (twice that while
	// a seal runs). At 128Ki the map and a seal's sort and write buffers
	// took 4.5 MB of live heap, 12 MB while sealing, which the sidecar's
	// GC target multiplies by three: a quarter of the webhook sidecar's
	// live heap under load. Smaller runs cost one more merge level (each
	// id rewritten once more, 16 bytes) and at most three more filter
	// probes a lookup.
	defaultHotLimit = 1 << 15
	// runBuffer is the buffer of a run file written or read in a stream:
	// sequential I/O gains little past 64 KiB, and a merge holds one for
	// each run it reads.
	runBuffer = 64 << 10
	// runBlock is how many digests a run reads at once on a filter hit
	// (4 KiB) and how many its sparse index covers with one entry.
	runBlock = 256
	// mergeFanIn is how many runs of one size class in the current slot
	// are merged into one.
	mergeFanIn = 4
	// windowSlots divides the window: the runs whose newest ids fall in
	// one slot are merged into one once the slot is over, so an id is
	// forgotten at most a slot (plus sealAge) after the window.
	windowSlots = 8
)

const (
	runMagic  = "TRBDDUP1"
	runHeader = 32 // magic, count, first and last acceptance (unix ns)
	runFooter = 8  // CRC-32C of the digests, then of the header
	runPrefix = "dedup-"
	runSuffix = ".run"
)

// dedupRun is one immutable run file of sorted digests.
type dedupRun struct {
	n           uint64
	path        string
	f           *os.File
	count       int64
	first, last time.Time
	filter      dedupFilter
	index       []digest // the first digest of each block
	merging     bool
}

// has reports whether the run holds d; buf is a scratch block.
func (r *dedupRun) has(d *digest, buf []byte) (bool, error) {
	if r.count == 0 || !r.filter.has(d) {
		return false, nil
	}
	i, found := slices.BinarySearchFunc(r.index, *d, func(e, t digest) int { return bytes.Compare(e[:], t[:]) })
	if found {
		return true, nil
	}
	if i == 0 {
		return false, nil
	}
	i--
	from := int64(i) * runBlock
	n := min(runBlock, r.count-from)
	b := buf[:n*16]
	if _, err := r.f.ReadAt(b, runHeader+from*16); err != nil {
		return false, fmt.Errorf("read dedup run %s: %w", r.path, err)
	}
	lo, hi := 0, int(n)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch c := bytes.Compare(b[m*16:m*16+16], d[:]); {
		case c == 0:
			return true, nil
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return false, nil
}

// runBuilder writes a run file from digests given in ascending order,
// building its filter and index as it goes.
type runBuilder struct {
	path, tmp   string
	f           *os.File
	w           *bufio.Writer
	crc         uint32
	count       int64
	prev        digest
	filter      dedupFilter
	index       []digest
	first, last time.Time
}

func newRunBuilder(dir string, n uint64, capacity int) (*runBuilder, error) {
	path := runPath(dir, n)
	b := &runBuilder{path: path, tmp: path + ".tmp", filter: newDedupFilter(capacity)}
	f, err := os.OpenFile(b.tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	b.f, b.w = f, bufio.NewWriterSize(f, runBuffer)
	if _, err := b.w.Write(make([]byte, runHeader)); err != nil {
		b.abort()
		return nil, err
	}
	return b, nil
}

// add appends d, which sorts after every digest added so far; a repeat of
// the previous one is skipped.
func (b *runBuilder) add(d digest) error {
	if b.count > 0 && d == b.prev {
		return nil
	}
	if b.count%runBlock == 0 {
		b.index = append(b.index, d)
	}
	b.filter.add(&d)
	b.crc = crc32.Update(b.crc, castagnoli, d[:])
	b.prev = d
	b.count++
	_, err := b.w.Write(d[:])
	return err
}

// finish completes the file (header, footer, fsync, rename, directory
// sync) and returns the run, open for reading.
func (b *runBuilder) finish(n uint64) (*dedupRun, error) {
	hdr := make([]byte, 0, runHeader)
	hdr = append(hdr, runMagic...)
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(b.count))
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(b.first.UnixNano()))
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(b.last.UnixNano()))
	foot := binary.LittleEndian.AppendUint32(nil, b.crc)
	foot = binary.LittleEndian.AppendUint32(foot, crc32.Checksum(hdr, castagnoli))
	err := func() error {
		if _, err := b.w.Write(foot); err != nil {
			return err
		}
		if err := b.w.Flush(); err != nil {
			return err
		}
		if _, err := b.f.WriteAt(hdr, 0); err != nil {
			return err
		}
		if err := b.f.Sync(); err != nil {
			return err
		}
		if err := os.Rename(b.tmp, b.path); err != nil {
			return err
		}
		return syncDir(filepath.Dir(b.path))
	}()
	if err != nil {
		b.abort()
		return nil, fmt.Errorf("write dedup run %s: %w", b.path, err)
	}
	return &dedupRun{n: n, path: b.path, f: b.f, count: b.count, first: b.first, last: b.last,
		filter: b.filter, index: slices.Clip(b.index)}, nil
}

func (b *runBuilder) abort() {
	_ = b.f.Close()
	_ = os.Remove(b.tmp)
}

// writeRun seals digests (sorted in place) accepted between first and last
// into run n.
func writeRun(dir string, n uint64, ds []digest, first, last time.Time) (*dedupRun, error) {
	slices.SortFunc(ds, func(a, b digest) int {
		if c := cmpUint(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
			return c
		}
		return cmpUint(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:]))
	})
	b, err := newRunBuilder(dir, n, len(ds))
	if err != nil {
		return nil, fmt.Errorf("write dedup run %s: %w", runPath(dir, n), err)
	}
	b.first, b.last = first, last
	for _, d := range ds {
		if err := b.add(d); err != nil {
			b.abort()
			return nil, fmt.Errorf("write dedup run %s: %w", b.path, err)
		}
	}
	return b.finish(n)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// errCorruptRun marks a run file that fails its checks.
var errCorruptRun = errors.New("corrupt dedup run")

// loadRun opens run n, checks its CRCs and builds its filter and index,
// reading the file once in a stream.
func loadRun(dir string, n uint64) (*dedupRun, error) {
	path := runPath(dir, n)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := readRun(f, path, n)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func readRun(f *os.File, path string, n uint64) (*dedupRun, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, runBuffer)
	hdr := make([]byte, runHeader)
	if _, err := io.ReadFull(br, hdr); err != nil || string(hdr[:8]) != runMagic {
		return nil, fmt.Errorf("%w %s: bad header", errCorruptRun, path)
	}
	count := int64(binary.LittleEndian.Uint64(hdr[8:]))
	if count < 0 || st.Size() != runHeader+count*16+runFooter {
		return nil, fmt.Errorf("%w %s: %d bytes for %d digests", errCorruptRun, path, st.Size(), count)
	}
	r := &dedupRun{n: n, path: path, f: f, count: count,
		first:  time.Unix(0, int64(binary.LittleEndian.Uint64(hdr[16:]))),
		last:   time.Unix(0, int64(binary.LittleEndian.Uint64(hdr[24:]))),
		filter: newDedupFilter(int(count)),
		index:  make([]digest, 0, (count+runBlock-1)/runBlock)}
	var crc uint32
	var d digest
	for i := range count {
		if _, err := io.ReadFull(br, d[:]); err != nil {
			return nil, fmt.Errorf("read dedup run %s: %w", path, err)
		}
		crc = crc32.Update(crc, castagnoli, d[:])
		if i%runBlock == 0 {
			r.index = append(r.index, d)
		}
		r.filter.add(&d)
	}
	foot := make([]byte, runFooter)
	if _, err := io.ReadFull(br, foot); err != nil {
		return nil, fmt.Errorf("read dedup run %s: %w", path, err)
	}
	if binary.LittleEndian.Uint32(foot) != crc || binary.LittleEndian.Uint32(foot[4:]) != crc32.Checksum(hdr, castagnoli) {
		return nil, fmt.Errorf("%w %s: CRC mismatch", errCorruptRun, path)
	}
	return r, nil
}

// mergeRuns writes run n holding the digests of runs (read from their
// files, which no one writes), without repeats.
func mergeRuns(dir string, n uint64, runs []*dedupRun) (*dedupRun, error) {
	var total int64
	type cursor struct {
		br  *bufio.Reader
		d   digest
		rem int64
	}
	cs := make([]*cursor, 0, len(runs))
	b, err := newRunBuilder(dir, n, int(func() int64 {
		for _, r := range runs {
			total += r.count
		}
		return total
	}()))
	if err != nil {
		return nil, fmt.Errorf("merge dedup runs into %s: %w", runPath(dir, n), err)
	}
	fail := func(err error) (*dedupRun, error) {
		b.abort()
		return nil, fmt.Errorf("merge dedup runs into %s: %w", b.path, err)
	}
	for i, r := range runs {
		if i == 0 || r.first.Before(b.first) {
			b.first = r.first
		}
		if r.last.After(b.last) {
			b.last = r.last
		}
		c := &cursor{br: bufio.NewReaderSize(io.NewSectionReader(r.f, runHeader, r.count*16), runBuffer), rem: r.count}
		if c.rem > 0 {
			if _, err := io.ReadFull(c.br, c.d[:]); err != nil {
				return fail(err)
			}
			c.rem--
			cs = append(cs, c)
		}
	}
	for len(cs) > 0 {
		m := 0
		for i := 1; i < len(cs); i++ {
			if bytes.Compare(cs[i].d[:], cs[m].d[:]) < 0 {
				m = i
			}
		}
		c := cs[m]
		if err := b.add(c.d); err != nil {
			return fail(err)
		}
		if c.rem == 0 {
			cs = slices.Delete(cs, m, m+1)
			continue
		}
		if _, err := io.ReadFull(c.br, c.d[:]); err != nil {
			return fail(err)
		}
		c.rem--
	}
	return b.finish(n)
}

func runPath(dir string, n uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%s%020d%s", runPrefix, n, runSuffix))
}

// listRuns returns the numbers of dir's run files, removing the temporary
// files of runs a crash cut.
func listRuns(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, runPrefix) {
			continue
		}
		if strings.HasSuffix(name, runSuffix+".tmp") {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, runPrefix), runSuffix), 10, 64)
		if err != nil || !strings.HasSuffix(name, runSuffix) {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}
