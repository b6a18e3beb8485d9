// Command acme-tributary is a custom Tributary sidecar: the stock command
// and every shipped connector, plus the Acme ERP connector compiled in.
// Nothing is forked; a custom build is this one file:
//
//	go build -o bin/acme-tributary ./examples/custom-connector/cmd/acme-tributary
//	bin/acme-tributary connectors          # lists acme_erp_poll beside the shipped ones
//	bin/acme-tributary run -c examples/custom-connector/tributary.yaml
package main

import (
	"os"

	"github.com/tributary/tributary/cmd/tributary/cli"
	_ "github.com/tributary/tributary/connectors/all"
	"github.com/tributary/tributary/core"
	_ "github.com/tributary/tributary/examples/custom-connector/erp"
)

func main() {
	os.Exit(cli.Main(core.DefaultRegistry, os.Args[1:]))
}
