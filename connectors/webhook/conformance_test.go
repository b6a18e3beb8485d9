package webhook_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	connector "github.com/tributary/tributary/connectors/webhook"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
)

func TestConformance(t *testing.T) {
	var seq atomic.Int64
	conformance.Run(t, conformance.Harness{
		New: func(t conformance.TB) core.Source {
			src := connector.New()
			err := src.Configure(core.NewConfig("conformance", map[string]any{
				"path":   "/hooks/conformance",
				"verify": map[string]any{"preset": "bearer", "secrets": []any{"tok"}},
				"dedup":  map[string]any{"header": "X-Request-Id"},
			}))
			if err != nil {
				t.Fatal(err)
			}
			return src
		},
		Produce: func(t conformance.TB, n int) {
			url := conformance.ServerURL(t) + "/hooks/conformance"
			client := &http.Client{}
			defer client.CloseIdleConnections()
			for range n {
				id := seq.Add(1)
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(fmt.Sprintf(`{"n":%d}`, id)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer tok")
				req.Header.Set("X-Request-Id", fmt.Sprint("delivery-", id))
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("post delivery %d: %v", id, err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("post delivery %d: status %d", id, resp.StatusCode)
				}
			}
		},
		Capabilities: conformance.Capabilities{Resume: true, Ordered: true},
	})
}
