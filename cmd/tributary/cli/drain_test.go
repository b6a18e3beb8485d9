package cli_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStopPublishesAcceptedDeliveries runs the quickstart, sends
// deliveries from several senders and stops the sidecar the moment the
// last one is answered 200: every delivery answered 200 is on the stream
// once the command has exited, none left behind in the inbox.
func TestStopPublishesAcceptedDeliveries(t *testing.T) {
	httpAddr, sc := startQuickstart(t)

	const senders, each = 8, 25
	var mu sync.Mutex
	accepted := map[string]bool{}
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("A-%d-%d", s, i)
				body := `{"event":"order.placed","order":{"id":"` + id + `","customer":"C-42","total":10,"currency":"EUR","lines":[]}}`
				mac := hmac.New(sha256.New, []byte("quickstart-secret"))
				mac.Write([]byte(body))
				code := retryWhile503(t, func() int {
					req, _ := http.NewRequest("POST", "http://"+httpAddr+"/hooks/demo", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("X-Delivery-Id", "delivery-"+id)
					req.Header.Set("X-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return 0
					}
					resp.Body.Close()
					return resp.StatusCode
				})
				if code != http.StatusOK {
					t.Errorf("delivery %s answered %d", id, code)
					continue
				}
				mu.Lock()
				accepted[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	sc.stop()
	<-sc.done
	if sc.code != 0 {
		t.Fatalf("run exited %d\n%s", sc.code, sc.stderr.String())
	}
	if len(accepted) != senders*each {
		t.Fatalf("%d of %d deliveries answered 200", len(accepted), senders*each)
	}

	code, out, errOut, ended := runCLIWithin(t, 20*time.Second, "events", "tail", "-c", quickstart, "--no-follow")
	if !ended || code != 0 {
		t.Fatalf("tail --no-follow: exit %d, ended by itself %v\n%s", code, ended, errOut)
	}
	var missing []string
	for id := range accepted {
		if !strings.Contains(out, `"subject":"`+id+`"`) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d deliveries answered 200 are not on the stream after the stop, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	if n := strings.Count(out, "\n"); n != senders*each {
		t.Fatalf("the stream holds %d events, want %d", n, senders*each)
	}
}
