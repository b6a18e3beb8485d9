package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/core/servicetest"
)

// refusingBrokerConfig is a sidecar on the real broker whose event topic
// takes records of at most 2 KB.
func refusingBrokerConfig(t *testing.T, extra string) (cfgFile, admin, hook string) {
	t.Helper()
	prefix := fmt.Sprintf("refused.%d.", time.Now().UnixNano())
	servicetest.KafkaTopic(t, prefix+"com.example.order.placed", map[string]string{"max.message.bytes": "2048"})
	cfgFile, admin, hook = recoveryConfig(t, fmt.Sprintf(`stream:
  type: kafka
  topics: {mode: per_type, prefix: %q}
  dead_letter_topic: %q
  config: {brokers: [%q]}`, prefix, prefix+"deadletter", servicetest.Kafka(t)[0]))
	if extra != "" {
		b, _ := os.ReadFile(cfgFile)
		b = bytes.Replace(b, []byte("    emit:\n"), []byte(extra+"\n    emit:\n"), 1)
		if err := os.WriteFile(cfgFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return cfgFile, admin, hook
}

// tailStored prints what the configured stream holds (the dead-letter topic
// with deadLetter) through the built binary.
func tailStored(t *testing.T, cfgFile string, deadLetter bool) []map[string]any {
	t.Helper()
	args := []string{"events", "tail", "-c", cfgFile, "--no-follow"}
	if deadLetter {
		args = append(args, "--dead-letter")
	}
	out, err := exec.Command(tributaryBinary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("events tail: %v\n%s", err, out)
	}
	var evs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("events tail printed %q: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// TestEventTheBrokerRefusesIsDeadLettered: an event above the topic's
// max.message.bytes goes to the dead-letter topic with the broker's reason,
// and the connector moves on: the events around it are published, in
// order.
func TestEventTheBrokerRefusesIsDeadLettered(t *testing.T) {
	cfgFile, admin, hook := refusingBrokerConfig(t, "")
	p := startSidecar(t, cfgFile)
	eventually(t, p, 30*time.Second, "ready", func() (bool, string) {
		code, body := readyz(admin)
		return code == http.StatusOK, fmt.Sprint(code, body)
	})
	big := "A-2-" + strings.Repeat("x", 4000)
	for i, id := range []string{"A-1", big, "A-3"} {
		resp, body := postRaw(t, hook, fmt.Sprint("d-", i), fmt.Sprintf(`{"id":%q,"total":1}`, id))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("delivery %d answered %d: %s", i, resp.StatusCode, body)
		}
	}
	// A 200 means the delivery is durable in the connector's inbox; its
	// event reaches the stream just after.
	var evs, dls []map[string]any
	eventually(t, p, 20*time.Second, "A-1 and A-3 on the stream, A-2 dead-lettered", func() (bool, string) {
		evs, dls = tailStored(t, cfgFile, false), tailStored(t, cfgFile, true)
		return len(evs) == 2 && len(dls) == 1, fmt.Sprintf("events %v, dead letters %v", evs, dls)
	})
	if evs[0]["subject"] != "A-1" || evs[1]["subject"] != "A-3" {
		t.Fatalf("events on the stream: %v, want A-1 then A-3", evs)
	}
	data, _ := json.Marshal(dls[0]["data"])
	for _, want := range []string{`"reason":"publish_refused"`, "max.message.bytes", "A-2-xxx"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Fatalf("dead letter %s lacks %s", data, want)
		}
	}
}

// TestEventTheBrokerRefusesCanStopTheConnector: with on_publish_error:
// stop, the refused event stops the connector, and its status says why.
func TestEventTheBrokerRefusesCanStopTheConnector(t *testing.T) {
	cfgFile, admin, hook := refusingBrokerConfig(t, "    on_publish_error: stop")
	p := startSidecar(t, cfgFile)
	eventually(t, p, 30*time.Second, "ready", func() (bool, string) {
		code, body := readyz(admin)
		return code == http.StatusOK, fmt.Sprint(code, body)
	})
	if resp, body := postRaw(t, hook, "d-0", `{"id":"A-1","total":1}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("delivery answered %d: %s", resp.StatusCode, body)
	}
	big := `{"id":"A-2-` + strings.Repeat("x", 4000) + `","total":1}`
	// The delivery is accepted (it is durable in the connector's inbox)
	// and stays there, to be published after a restart.
	if resp, body := postRaw(t, hook, "d-1", big); resp.StatusCode != http.StatusOK {
		t.Fatalf("delivery answered %d: %s", resp.StatusCode, body)
	}
	eventually(t, p, 30*time.Second, "the connector failed with the broker's reason", func() (bool, string) {
		code, body := readyz(admin)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "on_publish_error: stop") && strings.Contains(body, "max.message.bytes"), fmt.Sprint(code, body)
	})

	if dls := tailStored(t, cfgFile, true); len(dls) != 0 {
		t.Fatalf("dead letters written with on_publish_error: stop: %v", dls)
	}
}
