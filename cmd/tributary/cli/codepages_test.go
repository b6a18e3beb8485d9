//go:build linux

package cli_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rssFileOf reads a process's resident file pages, in bytes.
func rssFileOf(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no RssFile in /proc/%d/status", pid)
	return 0
}

// TestRunReleasesStartupCode runs the built binary twice, with the
// memory section's release_startup_code left to its default and turned
// off: once ready, the first drops its start-up code pages (it logs how
// many bytes, and holds fewer file pages than the second), and both go on
// taking deliveries.
func TestRunReleasesStartupCode(t *testing.T) {
	released := regexp.MustCompile(`start-up code pages released.*bytes=(\d+)`)
	start := func(t *testing.T, memory string) (p *sidecarProcess, admin, hook string) {
		dir := t.TempDir()
		admin, httpAddr := freeAddr(t), freeAddr(t)
		cfg := fmt.Sprintf(sidecarConfig, filepath.Join(dir, "state"), admin, httpAddr)
		cfg = strings.Replace(cfg, "log: {level: warn}", "log: {level: debug}\n"+memory, 1)
		file := filepath.Join(dir, "tributary.yaml")
		if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		p = startSidecar(t, file)
		eventually(t, p, 20*time.Second, "readyz answers 200", func() (bool, string) {
			code, body := readyz(admin)
			return code == http.StatusOK, fmt.Sprint(code, body)
		})
		return p, admin, "http://" + httpAddr + "/hooks/shop"
	}
	on, _, onHook := start(t, "")
	off, _, offHook := start(t, "memory: {release_startup_code: false}")

	var n int64
	eventually(t, on, 15*time.Second, "the release is logged", func() (bool, string) {
		m := released.FindStringSubmatch(on.logs.String())
		if m == nil {
			return false, "no log line"
		}
		n, _ = strconv.ParseInt(m[1], 10, 64)
		return true, m[0]
	})
	// The full build's start-up leaves tens of megabytes of code
	// resident; what is released is most of it.
	if n < 4<<20 {
		t.Fatalf("released %d bytes, want several megabytes\n%s", n, on.logs)
	}
	for i, hook := range []string{onHook, offHook} {
		if code := post(t, hook, fmt.Sprint("d-", i), `{"id":"A-1","total":12.5}`); code != http.StatusOK {
			t.Fatalf("delivery to %s answered %d", hook, code)
		}
	}
	onRSS, offRSS := rssFileOf(t, on.cmd.Process.Pid), rssFileOf(t, off.cmd.Process.Pid)
	if onRSS+4<<20 > offRSS {
		t.Fatalf("file pages resident after a delivery: %d bytes with the release, %d without; want at least 4 MiB fewer with it", onRSS, offRSS)
	}
	if strings.Contains(off.logs.String(), "start-up code pages") {
		t.Fatalf("release_startup_code: false released pages:\n%s", off.logs)
	}
	t.Logf("released %d MB; file pages resident after a delivery: %d MB with the release, %d MB without", n>>20, onRSS>>20, offRSS>>20)
}
