package lifecycle

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestSnapshotHeadReadsTheBucket writes a snapshot of many instances
// straight into a table and looks each up by its bucket.
func TestSnapshotHeadReadsTheBucket(t *testing.T) {
	tests := []struct {
		name string
		n    int
	}{
		{name: "one bucket", n: 10},
		{name: "many buckets", n: 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tr := New(Config{Machines: []*Machine{{}}})
			tr.cfg.Machines[0].Entity.Name = "order"
			tr.table = newTable()
			for i := range tt.n {
				k := tr.table.add(0, "A-"+strconv.Itoa(i))
				tr.table.slot(k).head = int64(i + 1)
			}
			path := filepath.Join(dir, SnapshotFile)
			if err := tr.writeSnapshot(path, snapshotHeader{judged: 9, from: 77}, nil); err != nil {
				t.Fatal(err)
			}
			if err := finishSnapshot(path, nil); err != nil {
				t.Fatal(err)
			}
			for i := range tt.n {
				head, from := snapshotHead(path, "order", "A-"+strconv.Itoa(i))
				if head != int64(i+1) || from != 77 {
					t.Fatalf("A-%d: head %d from %d, want %d and 77", i, head, from, i+1)
				}
			}
			if head, from := snapshotHead(path, "order", "B-1"); head != 0 || from != 77 {
				t.Errorf("B-1: head %d from %d, want 0 and 77", head, from)
			}
			seen := 0
			h, found, err := readSnapshot(path, func(snapshotEntry) { seen++ })
			if err != nil || !found || seen != tt.n || h.judged != 9 {
				t.Errorf("readSnapshot: %d instances, %+v, %v, %v", seen, h, found, err)
			}
			// A byte changed in the middle: the checksum tells.
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x40
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, _, err := readSnapshot(path, func(snapshotEntry) {}); !errors.Is(err, errBadSnapshot) {
				t.Errorf("readSnapshot of a damaged file: %v, want errBadSnapshot", err)
			}
		})
	}
}
