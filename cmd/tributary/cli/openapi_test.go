package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tributary/tributary/cmd/tributary/cli"
	"github.com/tributary/tributary/core"
)

// catchAll is the pattern under which connectors mount their own
// operator endpoints; the document marks those x-mounted-by: connector.
const catchAll = "/v1/connectors/"

type openAPIDoc struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(cli.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// muxPatterns returns the pattern of every mux.Handle and mux.HandleFunc
// call with a literal pattern in the package's source.
func muxPatterns(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); !ok || id.Name != "mux" {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				p, _ := strconv.Unquote(lit.Value)
				out = append(out, p)
			}
			return true
		})
	}
	return out
}

// TestOpenAPIDocumentsEveryRoute checks the committed OpenAPI document
// against the admin mux both ways: every route the code mounts is
// documented with its method, and every documented operation reaches the
// route of the same pattern (connectors' own endpoints reach the
// catch-all they are mounted under).
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	patterns := muxPatterns(t)
	if len(patterns) < 20 {
		t.Fatalf("found only %d routes in the source: %v", len(patterns), patterns)
	}
	for _, p := range patterns {
		if p == catchAll {
			continue
		}
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			t.Errorf("route %q has no method; the document cannot say which it takes", p)
			continue
		}
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("route %q is not in openapi.json: add %s under paths.%q", p, strings.ToLower(method), path)
		}
	}

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "tributary.yaml")
	// admin.debug mounts /debug/pprof/, documented too.
	withDebug := strings.Replace(sidecarConfig, "admin: {address: %s}", "admin: {address: %s, debug: true}", 1)
	if err := os.WriteFile(cfgFile, fmt.Appendf(nil, withDebug, filepath.Join(dir, "state"), "127.0.0.1:0", "127.0.0.1:0"), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := cli.Build(core.DefaultRegistry, cfgFile, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	mux, ok := sc.AdminHandler().(*http.ServeMux)
	if !ok {
		t.Fatalf("AdminHandler is a %T, not a *http.ServeMux", sc.AdminHandler())
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			var op struct {
				MountedBy string `json:"x-mounted-by"`
			}
			_ = json.Unmarshal(raw, &op)
			m := strings.ToUpper(method)
			req := httptest.NewRequest(m, param.ReplaceAllString(path, "x1"), nil)
			_, got := mux.Handler(req)
			want := m + " " + path
			if op.MountedBy == "connector" {
				want = catchAll
			}
			if got != want {
				t.Errorf("openapi.json documents %s %s, but the admin mux routes it to %q", m, path, got)
			}
			if op.MountedBy == "" && !slices.Contains(patterns, want) {
				t.Errorf("%s %s is documented but no literal route in the source has that pattern", m, path)
			}
		}
	}
}

// TestOpenAPIServed checks GET /v1/openapi.json answers the committed
// document.
func TestOpenAPIServed(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "tributary.yaml")
	if err := os.WriteFile(cfgFile, fmt.Appendf(nil, sidecarConfig, filepath.Join(dir, "state"), "127.0.0.1:0", "127.0.0.1:0"), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := cli.Build(core.DefaultRegistry, cfgFile, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	sc.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != string(cli.OpenAPI()) {
		t.Errorf("GET /v1/openapi.json: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
}

// TestOpenAPIDocumentIsValid validates the committed document against the
// OpenAPI 3.1 JSON Schema vendored in testdata, and checks the schema
// refuses a broken document.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "openapi", "3.1-schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	schemaDoc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	const url = "https://spec.openapis.org/oas/3.1/schema/2021-04-15"
	c := jsonschema.NewCompiler()
	if err := c.AddResource(url, schemaDoc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		t.Fatalf("compile the OpenAPI 3.1 schema: %v", err)
	}
	for _, tt := range []struct {
		name  string
		doc   []byte
		valid bool
	}{
		{name: "openapi.json", doc: cli.OpenAPI(), valid: true},
		{name: "a path without a slash", doc: []byte(`{"openapi": "3.1.0", "info": {"title": "x", "version": "1"}, "paths": {"nope": {}}}`)},
		{name: "a response without a description", doc: []byte(`{"openapi": "3.1.0", "info": {"title": "x", "version": "1"}, "paths": {"/a": {"get": {"responses": {"200": {}}}}}}`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(inst); (err == nil) != tt.valid {
				t.Errorf("valid = %v, want %v: %v", err == nil, tt.valid, err)
			}
		})
	}
}
