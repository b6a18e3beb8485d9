package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tributary/tributary/config"
)

func TestInterpolation(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(dir, "abs.txt")
	if err := os.WriteFile(abs, []byte("two\nlines\r\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TRIBUTARY_TEST_SET", "value")
	t.Setenv("TRIBUTARY_TEST_EMPTY", "")
	t.Setenv("TRIBUTARY_TEST_BATCH", "42")
	t.Setenv("TRIBUTARY_TEST_TRUE", "true")

	tests := []struct {
		name  string
		value string // YAML for the connector's "extra" field
		want  any
	}{
		{name: "variable", value: "${TRIBUTARY_TEST_SET}", want: "value"},
		{name: "variable inside text", value: "a-${TRIBUTARY_TEST_SET}-b", want: "a-value-b"},
		{name: "two variables", value: "${TRIBUTARY_TEST_SET}${TRIBUTARY_TEST_SET}", want: "valuevalue"},
		{name: "empty variable", value: `"${TRIBUTARY_TEST_EMPTY}"`, want: ""},
		{name: "default when unset", value: "${TRIBUTARY_TEST_UNSET:-fallback}", want: "fallback"},
		{name: "default when empty", value: "${TRIBUTARY_TEST_EMPTY:-fallback}", want: "fallback"},
		{name: "default ignored when set", value: "${TRIBUTARY_TEST_SET:-fallback}", want: "value"},
		{name: "empty default", value: `"${TRIBUTARY_TEST_UNSET:-}"`, want: ""},
		{name: "nested default", value: "${TRIBUTARY_TEST_UNSET:-${TRIBUTARY_TEST_SET}}", want: "value"},
		{name: "default with colon", value: `"${TRIBUTARY_TEST_UNSET:-http://x:1}"`, want: "http://x:1"},
		{name: "relative file", value: "${file:secret.txt}", want: "from-file"},
		{name: "absolute file", value: "${file:" + abs + "}", want: "two\nlines"},
		{name: "escape", value: "$${TRIBUTARY_TEST_SET}", want: "${TRIBUTARY_TEST_SET}"},
		{name: "escape beside a reference", value: "$${x}-${TRIBUTARY_TEST_SET}", want: "${x}-value"},
		{name: "lone dollar", value: "$5 and $HOME", want: "$5 and $HOME"},
		{name: "plain scalar is retyped", value: "${TRIBUTARY_TEST_BATCH}", want: 42},
		{name: "plain scalar is retyped to bool", value: "${TRIBUTARY_TEST_TRUE}", want: true},
		{name: "quoted scalar stays a string", value: `"${TRIBUTARY_TEST_BATCH}"`, want: "42"},
		{name: "list items", value: `["${TRIBUTARY_TEST_SET}", x]`, want: []any{"value", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "connectors:\n  - name: a\n    type: webhook\n    config:\n      path: /a\n      secret: s\n      extra: " + tt.value + "\n    emit: [{name: r, type: com.acme.test}]\n"
			cfg, err := config.Parse(filepath.Join(dir, "t.yaml"), []byte(doc), testRegistry())
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := cfg.Connectors[0].Config.Values["extra"]
			if !equal(got, tt.want) {
				t.Errorf("extra = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func equal(a, b any) bool {
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok && bok {
		if len(as) != len(bs) {
			return false
		}
		for i := range as {
			if !equal(as[i], bs[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

func TestInterpolationTypesValues(t *testing.T) {
	t.Setenv("TRIBUTARY_TEST_BATCH", "42")
	t.Setenv("TRIBUTARY_TEST_BAD", "forty")
	doc := edit(t, validYAML, "batch: 50", "batch: ${TRIBUTARY_TEST_BATCH}")
	cfg, err := parse(t, doc)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := cfg.Connectors[0].Config.Values["batch"]; got != 42 {
		t.Errorf("batch = %#v, want 42", got)
	}
	// A quoted reference still feeds an integer field.
	doc = edit(t, validYAML, "batch: 50", `batch: "${TRIBUTARY_TEST_BATCH}"`)
	if cfg, err = parse(t, doc); err != nil || cfg.Connectors[0].Config.Values["batch"] != 42 {
		t.Errorf("quoted batch: %v", err)
	}
	// The type check sees the interpolated value.
	doc = edit(t, validYAML, "batch: 50", "batch: ${TRIBUTARY_TEST_BAD}")
	_, err = parse(t, doc)
	if ps := problems(t, err); len(ps) != 1 || ps[0].Message != `"forty" is not an integer (example: 10)` || ps[0].Line != 26 {
		t.Errorf("problems = %v", err)
	}
}

func TestInterpolationNotInKeys(t *testing.T) {
	t.Setenv("TRIBUTARY_TEST_SET", "batch")
	doc := edit(t, validYAML, "      batch: 50", "      ${TRIBUTARY_TEST_SET}: 50")
	_, err := parse(t, doc)
	ps := problems(t, err)
	if len(ps) != 1 || !strings.HasPrefix(ps[0].Message, `unknown key "${TRIBUTARY_TEST_SET}"`) {
		t.Errorf("problems = %v", err)
	}
}

func TestInterpolationFileErrors(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 1<<20+1), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, ref, want string
	}{
		{"missing file", "${file:missing/secret.txt}", "cannot read ${file:missing/secret.txt}: open " + filepath.Join(dir, "missing/secret.txt") + ": no such file or directory; check the path (relative paths start from " + dir + ") and its permissions"},
		{"directory", "${file:.}", "cannot read ${file:.}: read " + dir + ": is a directory"},
		{"empty path", "${file:}", "empty path in ${file:}: write ${file:/path/to/secret}"},
		{"too large", "${file:big}", "${file:big} is larger than 1048576 bytes; point it at the secret itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, validYAML, "secret: s3cret", "secret: "+tt.ref)
			_, err := config.Parse(filepath.Join(dir, "t.yaml"), []byte(doc), testRegistry())
			ps := problems(t, err)
			want := config.Problem{File: filepath.Join(dir, "t.yaml"), Line: 25, Column: 15, Field: "connectors[0].config.secret", Message: tt.want}
			if len(ps) != 1 || ps[0] != want {
				t.Errorf("problems = %v\nwant %v", err, want)
			}
		})
	}
}

func TestInterpolationThroughAliases(t *testing.T) {
	t.Setenv("TRIBUTARY_TEST_SET", "value")
	doc := `connectors:
  - name: a
    type: webhook
    config: {path: &p "/$${x}/${TRIBUTARY_TEST_SET}", secret: s, extra: *p}
    emit: [{name: r, type: com.acme.test}]
`
	cfg, err := parse(t, doc)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	v := cfg.Connectors[0].Config.Values
	if v["path"] != "/${x}/value" || v["extra"] != "/${x}/value" {
		t.Errorf("path, extra = %#v, %#v (an aliased value must be interpolated once)", v["path"], v["extra"])
	}
}
