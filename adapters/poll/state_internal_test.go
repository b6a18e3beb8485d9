package poll

import (
	"context"
	"testing"
)

// TestSeenBlocks stores seen entries as blocks beside rows of the earlier
// one-row-per-entry table, loads those at or after a bound from both, and
// prunes both below it.
func TestSeenBlocks(t *testing.T) {
	tests := []struct {
		name  string
		kind  CursorKind
		cs    []cval // cursors of ids 1, 2, 3 (blocks) and 4 (old row)
		lower cval   // load and prune bound: ids 2, 3 and 4 are at or after it
	}{
		{"integer", CursorInt, []cval{{i: -5}, {i: 10}, {i: 1 << 40}, {i: 11}}, cval{i: 10}},
		{"string", CursorString, []cval{{s: "a"}, {s: "b"}, {s: "c\x00é"}, {s: "bb"}}, cval{s: "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := openState(ctx, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer st.close()
			id := func(n byte) [16]byte { return [16]byte{15: n} }
			old := id(4)
			if _, err := st.db.ExecContext(ctx, `INSERT INTO poll_seen (id, c) VALUES (?, ?)`, old[:], cursorArg(tc.cs[3], tc.kind)); err != nil {
				t.Fatal(err)
			}
			for _, b := range []commitBatch{
				{kind: tc.kind, seenIDs: [][16]byte{id(1), id(2)}, seenCs: tc.cs[:2]},
				{kind: tc.kind, seenIDs: [][16]byte{id(3)}, seenCs: tc.cs[2:3]},
			} {
				if _, err := st.commit(ctx, &b); err != nil {
					t.Fatal(err)
				}
			}
			check := func(when string) {
				t.Helper()
				got, err := st.loadSeen(ctx, tc.kind, tc.lower)
				if err != nil {
					t.Fatal(err)
				}
				want := map[[16]byte]cval{id(2): tc.cs[1], id(3): tc.cs[2], id(4): tc.cs[3]}
				if len(got) != len(want) {
					t.Fatalf("%s: loaded %v, want %v", when, got, want)
				}
				for k, v := range want {
					if got[k] != v {
						t.Fatalf("%s: entry %x = %v, want %v", when, k, got[k], v)
					}
				}
			}
			check("before pruning")
			if _, err := st.commit(ctx, &commitBatch{kind: tc.kind, prune: tc.lower, hasPrune: true}); err != nil {
				t.Fatal(err)
			}
			check("after pruning")
			// Pruning past every entry empties both tables.
			var past cval
			if tc.kind == CursorString {
				past.s = "z"
			} else {
				past.i = 1 << 50
			}
			if _, err := st.commit(ctx, &commitBatch{kind: tc.kind, prune: past, hasPrune: true}); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := st.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM poll_seen) + (SELECT count(*) FROM poll_seen_blocks)`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("%d seen rows left after pruning past every entry", n)
			}
		})
	}
}

// FuzzDecodeSeen: any block decodes to entries or an error, never a panic.
func FuzzDecodeSeen(f *testing.F) {
	b, _ := encodeSeen([][16]byte{{1}, {2}}, []cval{{s: "x"}, {s: "yy"}}, CursorString)
	f.Add(b, true)
	b, _ = encodeSeen([][16]byte{{1}}, []cval{{i: -7}}, CursorInt)
	f.Add(b, false)
	f.Fuzz(func(t *testing.T, data []byte, str bool) {
		kind := CursorInt
		if str {
			kind = CursorString
		}
		_ = decodeSeen(data, kind, cval{}, map[[16]byte]cval{})
	})
}
