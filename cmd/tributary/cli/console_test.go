package cli_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tributary/tributary/cmd/tributary/cli"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

var consoleShots = flag.String("console-screenshots", "", "write PNG screenshots of the console's pages into this directory (docs/ for the README)")

// browser returns a headless Chromium context, or skips (fails when the
// environment requires services) when no Chromium is installed.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		msg := "no Chromium on PATH: install Debian's chromium package (apt-get install chromium) to test the console in a browser"
		if servicetest.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return ctx
}

// waitText polls the text of sel in the page until want(text) or 20 s.
func waitText(t *testing.T, ctx context.Context, sel, what string, want func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var text string
	for {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		text, err = chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		if err == nil && want(text) {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q has text %q (%v)", what, sel, text, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if *consoleShots == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*consoleShots, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleInBrowser drives the console in headless Chromium: the
// overview's counters and chart move as deliveries reach the webhook
// connector, the connector's pause button pauses it (its counters stop
// until it is resumed), the sink's pauses the sink, the live tail shows an
// event of the chosen type as it is published, the catalog shows the
// schema, and a dead letter is dropped from its page.
func TestConsoleInBrowser(t *testing.T) {
	ctx := browser(t)
	e := newSinkE2E(t, "stream: {type: embedded}", "")
	rcv := newHookReceiver(t, nil)
	file := e.write("", httpSink("out", rcv.URL, "50ms", ""))
	runInProcess(t, file, e.admin)
	ui := "http://" + e.admin + "/ui"

	if err := chromedp.Do(ctx, chromedp.Navigate(ui), chromedp.WaitVisible(chromedp.CSS(`tr[data-connector="shop"]`))); err != nil {
		t.Fatalf("open %s: %v", ui, err)
	}
	emitted := `tr[data-connector="shop"] [data-field="events_emitted"]`
	waitText(t, ctx, emitted, "before any delivery", func(s string) bool { return s == "0" })
	postEvents(t, e.hook, "A/1", "B/1", "A/2")
	waitText(t, ctx, emitted, "after 3 deliveries", func(s string) bool { return s == "3" })
	waitText(t, ctx, `tr[data-sink="out"] [data-field="delivered"]`, "the sink's counter", func(s string) bool { return s == "3" })
	waitText(t, ctx, "#stream-state", "the stream", func(s string) bool { return s == "running" })
	if points, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#chart-line"), "points")); err != nil || points.Value == "" {
		t.Errorf("the chart has no points (%+v, %v)", points, err)
	}
	screenshot(t, ctx, "console-overview.png")

	// Pausing the connector from the console: it stops reading (a
	// delivery is told to retry later), its counters stop; resumed, they
	// move again.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-action="POST /v1/connectors/shop/pause"]`))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `tr[data-connector="shop"] [data-field="state"]`, "after the connector's pause button", func(s string) bool { return s == "paused" })
	var cst struct {
		State         string `json:"state"`
		EventsEmitted int    `json:"events_emitted"`
	}
	if code := getJSON(t, "http://"+e.admin+"/v1/connectors/shop", &cst); code != 200 || cst.State != "paused" || cst.EventsEmitted != 3 {
		t.Fatalf("the admin API says the connector is %d %+v after the console paused it", code, cst)
	}
	if resp, body := postRaw(t, e.hook, "d-P-1", `{"id":"P","total":1}`); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a delivery to the paused connector answered %d %s, want 503 (retry later)", resp.StatusCode, body)
	}
	time.Sleep(300 * time.Millisecond)
	waitText(t, ctx, emitted, "while the connector is paused", func(s string) bool { return s == "3" })
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-action="POST /v1/connectors/shop/resume"]`))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `tr[data-connector="shop"] [data-field="state"]`, "after the connector's resume button", func(s string) bool { return s == "running" })
	postEvents(t, e.hook, "P/1")
	waitText(t, ctx, emitted, "after the resume and a delivery", func(s string) bool { return s == "4" })
	waitHooks(t, rcv, 4)

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-action="POST /v1/sinks/out/pause"]`))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `tr[data-sink="out"] [data-field="state"]`, "after the pause button", func(s string) bool { return s == "paused" })
	var st struct{ State string }
	if code := getJSON(t, "http://"+e.admin+"/v1/sinks/out", &st); code != 200 || st.State != "paused" {
		t.Fatalf("the admin API says the sink is %d %q after the console paused it", code, st.State)
	}
	postEvents(t, e.hook, "C/1")
	time.Sleep(300 * time.Millisecond)
	if n := len(rcv.hooks()); n != 4 {
		t.Errorf("the paused sink delivered %d events, want 4", n)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-action="POST /v1/sinks/out/resume"]`))); err != nil {
		t.Fatal(err)
	}
	waitHooks(t, rcv, 5)

	if err := chromedp.Do(ctx, chromedp.Navigate(ui+"/tail?type=com.example.order.placed")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#tail-state", "the tail", func(s string) bool { return strings.HasPrefix(s, "following com.example.order.placed") })
	postEvents(t, e.hook, "D/7")
	waitText(t, ctx, "#tail tbody", "the tail after a delivery", func(s string) bool { return strings.Contains(s, "D") && strings.Contains(s, eventID("D/7")) })
	screenshot(t, ctx, "console-tail.png")

	if err := chromedp.Do(ctx, chromedp.Navigate(ui+"/catalog")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "main", "the catalog", func(s string) bool {
		return strings.Contains(s, "com.example.order.placed") && strings.Contains(s, `"order_id"`)
	})
	screenshot(t, ctx, "console-catalog.png")

	if resp, body := postRaw(t, e.hook, "d-bad", `{"id":"Z","total":"much"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("bad delivery answered %d %s", resp.StatusCode, body)
	}
	waitDeadLetters(t, e.admin, "", 1)
	if err := chromedp.Do(ctx, chromedp.Navigate(ui+"/deadletters"), chromedp.WaitVisible(chromedp.CSS(`tr[data-deadletter]`))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#deadletters tbody", "the dead letters", func(s string) bool { return strings.Contains(s, "schema_violation") })
	screenshot(t, ctx, "console-deadletters.png")
	attr, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`tr[data-deadletter]`), "data-deadletter"))
	if err != nil {
		t.Fatal(err)
	}
	id := attr.Value
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[data-action="POST /v1/deadletters/%s/retry"]`, id)))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#message", "the retry of a still-invalid change", func(s string) bool { return strings.Contains(s, "still fails") })
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[data-action="POST /v1/deadletters/%s/drop"]`, id)))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#deadletters tbody", "after the drop", func(s string) bool { return strings.Contains(s, "No open dead letters") })
	var l deadLetterList
	getJSON(t, "http://"+e.admin+"/v1/deadletters?status=dropped", &l)
	if l.Count != 1 || l.DeadLetters[0].ID != id {
		raw, _ := json.Marshal(l)
		t.Errorf("after the console's drop: %s", raw)
	}
}

// TestConsoleCatalogDiagrams renders the catalog page of the retail
// example: each type's schema, and the order entity's state diagram as an
// SVG with a box per state and an arc per transition, labelled with its
// event type. With -console-screenshots and Chromium it also shoots it.
func TestConsoleCatalogDiagrams(t *testing.T) {
	t.Setenv("RETAIL_ACCEPTED_WITHIN", "2m")
	sc, err := cli.Build(core.DefaultRegistry, "../../../examples/retail/tributary.yaml", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sc.AdminHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/ui/catalog")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /ui/catalog: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`<svg class="lifecycle"`,
		`data-state="accepted"`, `data-state="billed"`, `data-state="ready_for_shipment"`, `data-state="shipped"`, `data-state="cancelled"`,
		`>com.retail.customer.billed</text>`, `>com.retail.order.shipped</text>`,
		`>within 2m0s</text>`,
		`com.retail.order.accepted`, `&#34;pattern&#34;`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the catalog page lacks %s", want)
		}
	}
	if n := strings.Count(page, `class="transition"`); n != 5 {
		t.Errorf("%d transition arcs, want 5", n)
	}
	if *consoleShots != "" {
		ctx := browser(t)
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/ui/catalog"), chromedp.WaitVisible(chromedp.CSS("svg.lifecycle"))); err != nil {
			t.Fatal(err)
		}
		screenshot(t, ctx, "console-catalog-lifecycle.png")
	}
}
