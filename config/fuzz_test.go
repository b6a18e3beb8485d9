package config_test

import (
	"testing"

	"github.com/tributary/tributary/config"
)

func FuzzParse(f *testing.F) {
	f.Add([]byte(validYAML))
	f.Add([]byte(""))
	f.Add([]byte("connectors: [{name: a, type: webhook, config: {path: /x, secret: '${file:}'}}]"))
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("x: &x {<<: *x}"))
	f.Add([]byte("stream: {config: {<<: [{a: 1}, {b: 2}]}}"))
	f.Add([]byte("connectors:\n  - name: a\n    type: webhook\n    config: {extra: ${X:-${Y:-${Z}}}}\n"))
	f.Add([]byte("? [a]\n: b\n"))
	f.Add([]byte("--- 1\n--- 2\n"))
	f.Add([]byte("{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{"))
	reg := testRegistry()
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("fuzz.yaml", data, reg)
		if err == nil && cfg == nil {
			t.Fatal("Parse returned neither a configuration nor an error")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("Parse returned an empty error")
		}
	})
}
