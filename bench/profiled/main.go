// Command profiled is bin/tributary with a CPU profile: it writes the
// profile of the whole run to the file named by TRIBUTARY_CPUPROFILE, for
// finding where a benchmark's time goes.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/tributary/tributary/cmd/tributary/cli"
	_ "github.com/tributary/tributary/connectors/all"
	"github.com/tributary/tributary/core"
)

func main() {
	path := os.Getenv("TRIBUTARY_CPUPROFILE")
	if path == "" {
		fmt.Fprintln(os.Stderr, "profiled: set TRIBUTARY_CPUPROFILE to the profile's file name")
		os.Exit(2)
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profiled: create profile:", err)
		os.Exit(1)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "profiled: start profile:", err)
		os.Exit(1)
	}
	// The profile is written even when the sidecar is stopped by a signal
	// it does not handle itself.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		<-sig
		pprof.StopCPUProfile()
		f.Close()
		os.Exit(0)
	}()
	code := cli.Main(core.DefaultRegistry, os.Args[1:])
	pprof.StopCPUProfile()
	f.Close()
	os.Exit(code)
}
