package filesink_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tributary/tributary/connectors/filesink"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
)

// TestSinkConformance runs the sink kit against the files sink writing
// JSON Lines of the CloudEvents, completing a file every 50 ms. The
// target fails while its directory is moved away.
func TestSinkConformance(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "drop")
	away := dir + ".away"
	conformance.RunSink(t, conformance.SinkHarness{
		New: func(t conformance.TB) core.Sink {
			s := filesink.New()
			if err := s.Configure(core.NewConfig("conformance", map[string]any{"dir": dir, "max_age": "50ms", "name": "kit-{seq}.jsonl"})); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			return s
		},
		Received: func() []conformance.Delivered {
			var out []conformance.Delivered
			for _, id := range ids(t, dir) {
				out = append(out, conformance.Delivered{ID: id})
			}
			return out
		},
		Fail: func(t conformance.TB, _ []string) {
			if err := os.Rename(dir, away); err != nil {
				t.Fatalf("move the directory away: %v", err)
			}
		},
		Recover: func(t conformance.TB) {
			if _, err := os.Stat(away); err == nil {
				if err := os.Rename(away, dir); err != nil {
					t.Fatalf("move the directory back: %v", err)
				}
			}
		},
		Capabilities: conformance.SinkCapabilities{
			TargetedReason: "the test fails the whole directory, not one event",
			RefuseReason:   "a directory refuses no event for good; a line an expression cannot make is refused, as TestLineRefused checks",
			StallReason:    "a file system that takes a write and never answers cannot be staged; a Write waiting for its file to complete is cancelled in TestWriteCancelledWhileWaiting",
		},
	})
	_ = filesink.Type
}
