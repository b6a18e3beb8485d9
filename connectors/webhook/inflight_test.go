package webhook_test

import (
	"testing"

	"github.com/tributary/tributary/config/configtest"
	connector "github.com/tributary/tributary/connectors/webhook"
)

// TestDefaultMaxInFlight: a webhook entry without max_in_flight gets the
// connector's bounded default, 2,048 rather than the runtime's 10,000
// (deliveries past it wait in the durable inbox, not in memory), and a
// value written in the entry wins.
func TestDefaultMaxInFlight(t *testing.T) {
	configtest.MaxInFlight(t, connector.Spec(), `{path: /hooks/orders}`, connector.MaxInFlight)
}
