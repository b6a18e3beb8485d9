package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/tributary/tributary/adapters/webhook"
	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

// rulesTestFile is a file of rule tests: each case gives a connector's
// input, a change or a webhook delivery, and the outputs its rules must
// yield, in order.
type rulesTestFile struct {
	// Connector is the connector of every case that names none.
	Connector string          `yaml:"connector"`
	Tests     []rulesTestCase `yaml:"tests"`
}

type rulesTestCase struct {
	Name      string `yaml:"name"`
	Connector string `yaml:"connector"`
	// Change is a change as sources produce it (op, key, before, after,
	// payload, meta, source, position), as JSON or YAML.
	Change map[string]any `yaml:"change"`
	// Webhook is a delivery: the change is built from it as the webhook
	// adapter builds it (signatures and deduplication are not checked).
	Webhook *rulesTestWebhook `yaml:"webhook"`
	Expect  []rulesTestOutput `yaml:"expect"`
}

type rulesTestWebhook struct {
	// Body is the delivery's body: a string as sent, or a YAML value sent
	// as JSON.
	Body    any               `yaml:"body"`
	Headers map[string]string `yaml:"headers"`
	Method  string            `yaml:"method"`
	Query   map[string]string `yaml:"query"`
	Path    map[string]string `yaml:"path"`
}

// rulesTestOutput is one expected output: an event (type, and subject,
// partition key, data and id when given) or a dead letter (its reason,
// and text its error contains).
type rulesTestOutput struct {
	Rule         string `yaml:"rule,omitempty" json:"rule,omitempty"`
	Type         string `yaml:"type,omitempty" json:"type,omitempty"`
	Subject      string `yaml:"subject,omitempty" json:"subject,omitempty"`
	PartitionKey string `yaml:"partition_key,omitempty" json:"partition_key,omitempty"`
	ID           string `yaml:"id,omitempty" json:"id,omitempty"`
	Data         any    `yaml:"data,omitempty" json:"data,omitempty"`
	DeadLetter   *struct {
		Reason        string `yaml:"reason" json:"reason"`
		ErrorContains string `yaml:"error_contains,omitempty" json:"error_contains,omitempty"`
	} `yaml:"dead_letter,omitempty" json:"dead_letter,omitempty"`
}

func newRulesCmd(reg *core.Registry) *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "Work with the configuration's rules"}
	var file string
	test := &cobra.Command{
		Use:   "test -c FILE TESTFILE...",
		Short: "Run rule tests: inputs of a connector through its real rules and the catalog, compared with the events or dead letters expected",
		Long: "Each TESTFILE (YAML) holds tests: a connector's input, a change (op, key, before, after, payload, meta) or a webhook " +
			"delivery (body, headers), and the outputs expected in order: events (type, subject, partition_key, data, id) or dead " +
			"letters (reason, error_contains). Given fields are compared, the others ignored. A failing test prints a diff; the " +
			"command exits 1 when any test fails and 2 when the configuration or a test file is invalid.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfigFile(reg, file)
			if err != nil {
				return err
			}
			return runRuleTests(cfg, args, cmd.OutOrStdout())
		},
	}
	test.Flags().StringVarP(&file, "config", "c", "tributary.yaml", "configuration file")
	cmd.AddCommand(test)
	return cmd
}

// runRuleTests runs every test of files against cfg's rules, reporting to
// out.
func runRuleTests(cfg *config.Config, files []string, out io.Writer) error {
	total, failed := 0, 0
	for _, f := range files {
		tf, err := readRulesTestFile(f)
		if err != nil {
			return invalid(err)
		}
		for i, tc := range tf.Tests {
			name := tc.Name
			if name == "" {
				name = fmt.Sprintf("tests[%d]", i)
			}
			conn := tc.Connector
			if conn == "" {
				conn = tf.Connector
			}
			set := cfg.Compiled.Rules[conn]
			if set == nil {
				return invalid(fmt.Errorf("%s: test %q: %s has no connector %q; name one of its connectors in connector:", f, name, cfg.File, conn))
			}
			ch, err := tc.change(name)
			if err != nil {
				return invalid(fmt.Errorf("%s: test %q: %w", f, name, err))
			}
			total++
			got := outputsOf(runtime.Rules(set).Map(ch), tc.Expect)
			if d := diffOutputs(tc.Expect, got); d != "" {
				failed++
				fmt.Fprintf(out, "FAIL %s: %s\n%s", f, name, d)
				continue
			}
			fmt.Fprintf(out, "ok   %s: %s\n", f, name)
		}
	}
	if failed > 0 {
		return &exitError{code: ExitError, err: fmt.Errorf("%d of %d rule tests failed", failed, total)}
	}
	fmt.Fprintf(out, "%d rule tests passed\n", total)
	return nil
}

func readRulesTestFile(path string) (rulesTestFile, error) {
	var tf rulesTestFile
	b, err := os.ReadFile(path)
	if err != nil {
		return tf, fmt.Errorf("read rule tests: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil {
		return tf, fmt.Errorf("%s: %w (a rule test file has connector: and tests: [{name, change or webhook, expect}])", path, err)
	}
	if len(tf.Tests) == 0 {
		return tf, fmt.Errorf("%s: no tests: add a list under tests:", path)
	}
	for i, tc := range tf.Tests {
		if (tc.Change == nil) == (tc.Webhook == nil) {
			return tf, fmt.Errorf("%s: tests[%d] (%q): give exactly one of change: and webhook:", path, i, tc.Name)
		}
	}
	return tf, nil
}

// change builds the case's input change.
func (tc rulesTestCase) change(name string) (*core.Change, error) {
	pos := core.Position{Version: 1, Data: []byte("test:" + name)}
	if tc.Webhook != nil {
		return tc.Webhook.change(pos)
	}
	b, err := json.Marshal(tc.Change)
	if err != nil {
		return nil, fmt.Errorf("change: %w", err)
	}
	var ch core.Change
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ch); err != nil {
		return nil, fmt.Errorf("change: %w (fields: op, key, before, after, payload, meta, source, position)", err)
	}
	if ch.Op == "" {
		return nil, errors.New("change: op is missing (create, update, delete, read, truncate or message)")
	}
	if ch.Position.Data == nil {
		ch.Position = pos
	}
	return &ch, nil
}

// change builds the change of a delivery as the webhook adapter does.
func (w *rulesTestWebhook) change(pos core.Position) (*core.Change, error) {
	headers := map[string]any{}
	contentType := "application/json"
	for k, v := range w.Headers {
		k = http.CanonicalHeaderKey(k)
		headers[k] = v
		if k == "Content-Type" {
			contentType = v
		}
	}
	if _, ok := headers["Content-Type"]; !ok {
		headers["Content-Type"] = contentType
	}
	var body []byte
	switch b := w.Body.(type) {
	case string:
		body = []byte(b)
	case nil:
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			return nil, fmt.Errorf("webhook body: %w", err)
		}
	}
	mt := webhook.MediaType(contentType)
	payload, err := webhook.ParseBody(mt, body)
	if err != nil {
		return nil, fmt.Errorf("webhook body: %w", err)
	}
	method := w.Method
	if method == "" {
		method = http.MethodPost
	}
	anyMap := func(m map[string]string) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	return &core.Change{
		Op:      core.OpMessage,
		Payload: payload,
		Meta: map[string]any{
			"headers": headers, "query": anyMap(w.Query), "path": anyMap(w.Path), "method": method,
			"remote_addr": "127.0.0.1:0", "delivery_id": string(pos.Data), "content_type": mt,
		},
		Source:   core.SourceInfo{System: "webhook", CommitTime: time.Now().UTC()},
		Position: pos,
		Raw:      body,
	}, nil
}

// outputsOf describes outs as expectations, with the fields expect gives
// (by position) so that a diff shows only what the test compares.
func outputsOf(outs []runtime.Output, expect []rulesTestOutput) []rulesTestOutput {
	var got []rulesTestOutput
	for i, o := range outs {
		var want rulesTestOutput
		if i < len(expect) {
			want = expect[i]
		}
		g := rulesTestOutput{Type: typeOf(o)}
		if want.Rule != "" {
			g.Rule = o.Rule
		}
		if o.Err != nil {
			g.Type = ""
			g.DeadLetter = &struct {
				Reason        string `yaml:"reason" json:"reason"`
				ErrorContains string `yaml:"error_contains,omitempty" json:"error_contains,omitempty"`
			}{Reason: o.Reason}
			if want.DeadLetter != nil && want.DeadLetter.ErrorContains != "" {
				g.DeadLetter.ErrorContains = o.Err.Error()
				if strings.Contains(o.Err.Error(), want.DeadLetter.ErrorContains) {
					g.DeadLetter.ErrorContains = want.DeadLetter.ErrorContains
				}
			}
			got = append(got, g)
			continue
		}
		if o.Event == nil {
			continue
		}
		if want.Subject != "" {
			g.Subject = o.Event.Subject
		}
		if want.PartitionKey != "" {
			g.PartitionKey = o.Event.PartitionKey
		}
		if want.ID != "" {
			g.ID = o.Event.ID
		}
		if want.Data != nil {
			var d any
			_ = json.Unmarshal(o.Event.Data, &d)
			g.Data = d
		}
		got = append(got, g)
	}
	return got
}

func typeOf(o runtime.Output) string {
	if o.Event != nil {
		return o.Event.Type
	}
	return ""
}

// diffOutputs returns a line diff of want and got as JSON ("-" expected,
// "+" produced), or "" when they are equal.
func diffOutputs(want, got []rulesTestOutput) string {
	norm := func(v []rulesTestOutput) []string {
		if v == nil {
			v = []rulesTestOutput{}
		}
		b, _ := json.Marshal(v)
		var x any
		_ = json.Unmarshal(b, &x)
		b, _ = json.MarshalIndent(x, "", "  ")
		return strings.Split(string(b), "\n")
	}
	a, b := norm(want), norm(got)
	if strings.Join(a, "\n") == strings.Join(b, "\n") {
		return ""
	}
	return lineDiff(a, b)
}

// lineDiff is a longest-common-subsequence diff of two short texts.
func lineDiff(a, b []string) string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var sb strings.Builder
	sb.WriteString("  --- expected\n  +++ produced\n")
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			sb.WriteString("    " + a[i] + "\n")
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			sb.WriteString("  - " + a[i] + "\n")
			i++
		default:
			sb.WriteString("  + " + b[j] + "\n")
			j++
		}
	}
	return sb.String()
}
