package mysql_test

import (
	"testing"

	"github.com/tributary/tributary/config/configtest"
	connector "github.com/tributary/tributary/connectors/mysql"
)

// TestDefaultMaxInFlight: a mysql_cdc entry without max_in_flight gets the
// connector's bounded default, 2,000 rather than the runtime's 10,000, and
// a value written in the entry wins.
func TestDefaultMaxInFlight(t *testing.T) {
	configtest.MaxInFlight(t, connector.Spec(), `{dsn: "u:secretpw@tcp(db:3306)/shop"}`, 2000)
}
