//go:build unix

package plugin

import (
	"os"
	"os/exec"
	"syscall"
)

// isolate starts the plugin in its own process group, so that a terminal's
// interrupt reaches the sidecar alone (which then closes the plugin), and
// so that killing the plugin also kills what it started.
func isolate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killTree kills the plugin's process group.
func killTree(p *os.Process) {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		_ = p.Kill()
	}
}
