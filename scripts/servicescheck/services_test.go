package servicescheck_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/core/servicetest"
)

// TestPostgresUpFromUnreachableClone runs `scripts/services up postgres` from
// a copy of the repository below a 0700 directory, which the postgres OS user
// cannot enter (a clone in a fresh `mktemp -d`). The cluster, its log and the
// server's working directory must all live where that user can reach them,
// and a second `up` must be a no-op. The copy's cluster listens on a free
// port, so the services other tests use are not touched.
func TestPostgresUpFromUnreachableClone(t *testing.T) {
	requirePostgresInstall(t)
	script, err := filepath.Abs("../services")
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(script)
	if err != nil {
		t.Fatalf("read the services script: %v", err)
	}
	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(private, "clone")
	if err := os.MkdirAll(filepath.Join(repo, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(repo, "scripts", "services")
	if err := os.WriteFile(copied, body, 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(copied, args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(),
			"TRIBUTARY_SERVICES_POSTGRES_PORT="+port,
			"TRIBUTARY_SERVICES_WAIT=60")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if out, err := run("down", "postgres"); err != nil {
			t.Errorf("services down postgres: %v\n%s", err, out)
		}
		data, err := os.ReadFile(filepath.Join(repo, ".services", "postgres", "datadir"))
		if err != nil {
			return
		}
		home := filepath.Dir(strings.TrimSpace(string(data)))
		if strings.HasPrefix(home, "/var/lib/tributary-services/") {
			if err := os.RemoveAll(home); err != nil {
				t.Errorf("remove the cluster in %s: %v", home, err)
			}
		}
	})

	if out, err := run("up", "postgres"); err != nil {
		t.Fatalf("services up postgres from a clone in a 0700 directory: %v\n%s", err, out)
	}
	out, err := run("up", "postgres")
	if err != nil {
		t.Fatalf("second services up postgres: %v\n%s", err, out)
	}
	if !strings.Contains(out, "already running") {
		t.Errorf("second up should find postgres running, got:\n%s", out)
	}
	if out, err := run("status", "postgres"); err != nil || !strings.Contains(out, "postgres: running") {
		t.Errorf("status postgres: %v\n%s", err, out)
	}
	out, err = run("env", "postgres")
	if err != nil {
		t.Fatalf("env postgres: %v\n%s", err, out)
	}
	if want := "@127.0.0.1:" + port + "/tributary"; !strings.Contains(out, want) {
		t.Errorf("env postgres = %q, want a URL with %q", out, want)
	}
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second)
	if err != nil {
		t.Fatalf("postgres started but does not answer on port %s: %v", port, err)
	}
	c.Close()
}

// requirePostgresInstall skips (or, when services are required, fails) unless
// this machine can run the postgres service the way CI does: as root, with
// the Debian postgresql package installed.
func requirePostgresInstall(t *testing.T) {
	t.Helper()
	missing := ""
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	switch {
	case os.Geteuid() != 0:
		missing = "root (the script runs the server as the postgres OS user)"
	case len(bins) == 0:
		missing = "the Debian postgresql package (`scripts/services up postgres` installs it)"
	}
	if missing == "" {
		if err := exec.Command("id", "postgres").Run(); err != nil {
			missing = "the postgres OS user (the Debian postgresql package creates it)"
		}
	}
	if missing == "" {
		return
	}
	if servicetest.Required() {
		t.Fatalf("%s=1 but this test needs %s", servicetest.EnvRequire, missing)
	}
	t.Skipf("needs %s; `make test` runs it", missing)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
