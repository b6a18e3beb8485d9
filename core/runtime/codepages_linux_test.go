package runtime

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// releaseProbe is initialised data: it lives in one of the binary's
// writable mappings, which ReleaseStartupCode must leave alone.
var releaseProbe = [4]int64{7, 7, 7, 7}

// rssFile reads the process's resident file pages, in bytes.
func rssFile(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	kb, ok := statusField(b, "RssFile:")
	if !ok {
		t.Fatal("no RssFile in /proc/self/status")
	}
	return kb << 10
}

func TestReleaseStartupCode(t *testing.T) {
	releaseProbe[2] = 42
	before := rssFile(t)
	released, err := ReleaseStartupCode()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	if released <= 0 || after >= before {
		t.Fatalf("released %d bytes; RssFile %d before, %d after: want fewer file pages resident", released, before, after)
	}
	// The written data is kept: a writable private mapping dropped would
	// read the file's initial values again.
	if releaseProbe != [4]int64{7, 7, 42, 7} {
		t.Fatalf("initialised data after the release: %v, want [7 7 42 7]", releaseProbe)
	}
	// Code not run since the release faults back in and runs.
	re := regexp.MustCompile(`^(\d+)-(\w+)$`)
	if m := re.FindStringSubmatch("123-abc"); len(m) != 3 || m[2] != "abc" {
		t.Fatalf("regexp after the release: %q", m)
	}
	if rssFile(t) <= after {
		t.Fatal("no code faulted back in after the release")
	}
	// Again: nothing breaks when there is less to release.
	if _, err := ReleaseStartupCode(); err != nil {
		t.Fatal(err)
	}
}

func TestExeMapping(t *testing.T) {
	exe := exeFile{dev: "fd:01", ino: "4242", path: "/usr/local/bin/tributary"}
	tests := []struct {
		line string
		want bool
	}{
		{"00400000-017d8000 r-xp 00000000 fd:01 4242 /usr/local/bin/tributary", true},
		{"017d8000-039a5000 r--p 013d8000 fd:01 4242 /usr/local/bin/tributary", true},
		{"039a5000-03ad7000 rw-p 035a5000 fd:01 4242 /usr/local/bin/tributary", false},   // writable: the program's data
		{"00400000-017d8000 r-xs 00000000 fd:01 4242 /usr/local/bin/tributary", false},   // shared
		{"00400000-017d8000 r-xp 00000000 00:2f 977 /usr/local/bin/tributary", true},     // overlay: the underlying file's device and inode
		{"7f0000000000-7f0000001000 r--p 00000000 fd:01 4243 /usr/lib/libc.so.6", false}, // another file
		{"7f0000000000-7f0000021000 rw-p 00000000 00:00 0 ", false},                      // anonymous
		{"7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]", false},
	}
	for _, tt := range tests {
		if got := exe.readOnlyMapping(strings.Fields(tt.line)); got != tt.want {
			t.Errorf("%q: readOnlyMapping = %v, want %v", tt.line, got, tt.want)
		}
	}
	spaced := exeFile{dev: "fd:01", ino: "1", path: "/opt/my tools/tributary"}
	if !spaced.readOnlyMapping(strings.Fields("00400000-017d8000 r-xp 00000000 00:2f 977 /opt/my tools/tributary")) {
		t.Error("a path with a space did not match")
	}
}
