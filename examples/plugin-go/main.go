// Command plugin-go is a connector plugin written in Go: it follows a
// fixed-width extract that a legacy mainframe job appends order records to,
// and is served to the sidecar over gRPC by plugin.Serve. The source itself
// is an ordinary core.Source, as short as a compiled-in connector; only
// main differs.
//
//	go build -o bin/extract-plugin ./examples/plugin-go
//
// and in the sidecar's configuration:
//
//	connectors:
//	  - name: mainframe_orders
//	    type: plugin
//	    config:
//	      command: bin/extract-plugin
//	      transport: grpc
//	      config:
//	        file: /data/exports/ORDERS.DAT
package main

import (
	"github.com/tributary/tributary/plugin"
)

func main() {
	plugin.Serve(NewExtract())
}
