package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tributary/tributary/config"
)

// TestHostileDocuments checks that alias bombs, deep nesting and floods of
// mistakes end in a bounded report instead of exhausting the process.
func TestHostileDocuments(t *testing.T) {
	bomb := `a: &a [{q: 1},{q: 1},{q: 1},{q: 1},{q: 1},{q: 1},{q: 1},{q: 1},{q: 1}]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
`
	tests := []struct {
		name, doc, want string
	}{
		{"alias bomb in a free-form value", bomb + "stream: {config: {x: *g}}\n", "nests or repeats too deeply"},
		{"alias bomb in a list of objects", bomb + "connectors: [{name: a, type: webhook, config: {tables: *g}}]\n", "nests or repeats too deeply"},
		{"deep flow nesting", strings.Repeat("[", 5000) + strings.Repeat("]", 5000), ""},
		{"deep block nesting", "stream:\n  config:\n    extra:\n" + deepBlock(3000), ""},
		{"thousands of unknown keys", manyKeys(20000), "19900 more problems not shown; fix the ones above first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("f.yaml", []byte(tt.doc), testRegistry())
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not contain %q:\n%.2000s", tt.want, err)
			}
			if n := len(problems(t, err)); n > 101 {
				t.Errorf("got %d problems, want at most 101", n)
			}
		})
	}
}

func deepBlock(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(strings.Repeat(" ", i+6) + "a:\n")
	}
	return b.String()
}

func manyKeys(n int) string {
	var b strings.Builder
	b.WriteString("stream:\n  config:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "    k%d: 1\n", i)
	}
	return b.String()
}
