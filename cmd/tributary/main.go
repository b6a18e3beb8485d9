// Command tributary is the Tributary sidecar and CLI with every shipped
// connector compiled in.
package main

import (
	"os"

	"github.com/tributary/tributary/cmd/tributary/cli"
	_ "github.com/tributary/tributary/connectors/all"
	"github.com/tributary/tributary/core"
)

func main() {
	os.Exit(cli.Main(core.DefaultRegistry, os.Args[1:]))
}
