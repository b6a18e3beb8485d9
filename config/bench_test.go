package config_test

import (
	"testing"

	"github.com/tributary/tributary/config"
)

// BenchmarkParse measures loading the table tests' valid configuration:
// parsing, interpolation, validation, Configure, catalog and rules.
func BenchmarkParse(b *testing.B) {
	reg := testRegistry()
	data := []byte(validYAML)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := config.Parse("bench.yaml", data, reg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSchema measures generating the JSON Schema.
func BenchmarkSchema(b *testing.B) {
	reg := testRegistry()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := config.Schema(reg); err != nil {
			b.Fatal(err)
		}
	}
}
