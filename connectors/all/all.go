// Package all compiles in every shipped connector and stream. The sidecar
// and custom builds import it for its side effects:
//
//	import _ "github.com/tributary/tributary/connectors/all"
package all

import (
	// Streams.
	_ "github.com/tributary/tributary/connectors/embedded"
	_ "github.com/tributary/tributary/connectors/kafka"

	// Sources.
	_ "github.com/tributary/tributary/connectors/files"
	_ "github.com/tributary/tributary/connectors/mysql"
	_ "github.com/tributary/tributary/connectors/plugin"
	_ "github.com/tributary/tributary/connectors/postgres"
	_ "github.com/tributary/tributary/connectors/rest"
	_ "github.com/tributary/tributary/connectors/sql"
	_ "github.com/tributary/tributary/connectors/webhook"

	// Sinks.
	_ "github.com/tributary/tributary/connectors/audit"
	_ "github.com/tributary/tributary/connectors/filesink"
	_ "github.com/tributary/tributary/connectors/http"
	_ "github.com/tributary/tributary/connectors/sqlsink"
)
