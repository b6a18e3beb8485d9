package postgres_test

import (
	"testing"

	"github.com/tributary/tributary/config/configtest"
	connector "github.com/tributary/tributary/connectors/postgres"
)

// TestDefaultMaxInFlight: a postgres_cdc entry without max_in_flight gets
// the connector's bounded default, 1,000 rather than the runtime's 10,000,
// and a value written in the entry wins.
func TestDefaultMaxInFlight(t *testing.T) {
	configtest.MaxInFlight(t, connector.Spec(), `{url: "postgres://u:secretpw@db:5432/erp"}`, 1000)
}
