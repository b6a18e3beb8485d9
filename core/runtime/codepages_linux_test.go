package runtime

import (
	"os"
	"regexp"
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
