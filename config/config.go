package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
	"go.yaml.in/yaml/v3"
)

// Config is a loaded configuration file: fully resolved, with defaults
// applied and every reference interpolated.
type Config struct {
	// File is the file's name as given to Load or Parse.
	File string
	// Dir is the absolute directory relative paths resolve against.
	Dir string
	// Version is the file format's version (1).
	Version int
	// StateDir is the absolute directory for local state.
	StateDir string
	Log      LogConfig
	Admin    AdminConfig
	HTTP     HTTPConfig
	Shutdown ShutdownConfig
	Memory   MemoryConfig
	Tracing  TracingConfig
	Stream   StreamConfig
	// Catalog is the declared list of event types, as written.
	Catalog []core.EventType
	// Connectors are the connector instances in file order, disabled ones
	// included.
	Connectors []ConnectorConfig
	// Sinks are the sink instances in file order, disabled ones included.
	Sinks []SinkConfig
	// Warnings are questionable but valid settings (deprecated fields, a
	// connector that emits nothing), in file order.
	Warnings []Problem
	// Compiled holds the catalog, the rules and the sinks' expressions,
	// compiled and type-checked.
	Compiled Compiled
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string
	// Format is text or json.
	Format string
}

// AdminConfig configures the admin HTTP server.
type AdminConfig struct {
	// Address is the listen address; "" disables the admin server.
	Address string
	// Tokens are the bearer tokens the API accepts; none: loopback only.
	Tokens []AdminToken
	// OpenPaths are answered without a token.
	OpenPaths []string
	// Debug serves Go's runtime profiles under /debug/pprof/.
	Debug bool
}

// The roles of admin tokens.
const (
	// RoleRead may read (GET) the admin API.
	RoleRead = "read"
	// RoleOperator may also act: pause, resume, restart, replay.
	RoleOperator = "operator"
)

// AdminToken is one bearer token of the admin API.
type AdminToken struct {
	Name  string
	Role  string
	Token string
}

// HTTPConfig configures the shared listener webhook connectors mount on.
type HTTPConfig struct {
	// Address is the listen address; "" runs no shared listener.
	Address string
	// TLS, when both files are set, serves HTTPS.
	TLS TLSConfig
	// ReadTimeout bounds reading one request, body included.
	ReadTimeout time.Duration
}

// TLSConfig names a certificate and its key. Both are set or neither is.
type TLSConfig struct {
	// CertFile and KeyFile are absolute paths, or "".
	CertFile, KeyFile string
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

// ShutdownConfig configures graceful shutdown.
type ShutdownConfig struct {
	// Timeout bounds draining and committing after a stop signal.
	Timeout time.Duration
}

// MemoryConfig configures the Go runtime's memory (the memory section).
type MemoryConfig struct {
	// Limit is the soft memory limit in bytes: 0 when the file sets none
	// (the sidecar's default applies), -1 for off.
	Limit int64
	// ReleaseStartupCode drops the binary's start-up code pages from the
	// resident memory once the sidecar is ready (runtime.ReleaseStartupCode).
	ReleaseStartupCode bool
}

// TracingConfig configures OpenTelemetry tracing (the tracing section).
type TracingConfig struct {
	// Exporter is TracingOTLP, TracingNone, or "" (as the OTEL_*
	// variables say).
	Exporter string
	// Endpoint is the collector's URL, or "".
	Endpoint string
	// Protocol is "http/protobuf", "grpc", or "".
	Protocol string
	// SampleRatio is the share of changes traced, 0 to 1.
	SampleRatio float64
	// ServiceName is the service.name resource attribute, or "".
	ServiceName string
}

// StreamConfig configures the shared stream.
type StreamConfig struct {
	// Type is a registered stream type.
	Type   string
	Topics TopicsConfig
	// DeadLetterTopic receives what could not be mapped or validated.
	DeadLetterTopic string
	// Config holds the stream type's own fields; its Name is "stream".
	Config core.Config

	secrets []string
}

// TopicsConfig says how events map to topics.
type TopicsConfig struct {
	// Mode is TopicsPerType or TopicsSingle.
	Mode string
	// Prefix starts every per-type topic name.
	Prefix string
	// Name is the single mode's topic.
	Name string
}

// Topic returns the topic an event of the given type goes to.
func (t TopicsConfig) Topic(eventType string) string {
	if t.Mode == TopicsSingle {
		return t.Name
	}
	return t.Prefix + eventType
}

// ConnectorConfig is one connector instance.
type ConnectorConfig struct {
	// Name is the unique instance name.
	Name string
	// Type is a registered source type.
	Type string
	// Config holds the type's own fields; its Name is the connector's name.
	Config core.Config
	// Emit holds the mapping rules, as written.
	Emit  []core.Rule
	Retry RetryConfig
	// MaxInFlight bounds changes read but not yet acknowledged.
	MaxInFlight int
	// OnPublishError is "dead_letter" or "stop": what an event the stream
	// refuses for good does.
	OnPublishError string
	// Disabled connectors are configured but not run.
	Disabled bool

	secrets []string
}

// RetryConfig is a connector's backoff after failures.
type RetryConfig struct {
	// Initial is the first delay; it doubles up to Max.
	Initial, Max time.Duration
}

// Load reads the configuration file at path, interpolates its references,
// and validates it completely against reg (core.DefaultRegistry when nil):
// the file's own keys, the stream's, every connector's and every sink's
// fields, each component's Configure, the catalog, the rules and the
// sinks' expressions. An invalid file yields
// an *Error listing every problem with its line and column.
func Load(path string, reg *core.Registry) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration %q: %w", path, err)
	}
	return Parse(path, data, reg)
}

// Parse is Load for a document already in memory; name is used in problems
// and to resolve relative paths (against the working directory when name
// is "").
func Parse(name string, data []byte, reg *core.Registry) (*Config, error) {
	return ParseWith(name, data, reg, Options{})
}

// Options adjusts how ParseWith reads a document.
type Options struct {
	// OpenSecret opens the file of a ${file:PATH} reference (PATH already
	// resolved against the configuration's directory). Nil means os.Open.
	// Tests use it to load sample files that point at /run/secrets.
	OpenSecret func(path string) (io.ReadCloser, error)
}

// ParseWith is Parse with options.
func ParseWith(name string, data []byte, reg *core.Registry, opts Options) (*Config, error) {
	if reg == nil {
		reg = core.DefaultRegistry
	}
	dir, err := baseDir(name)
	if err != nil {
		return nil, err
	}
	l := newLoader(name, dir)
	if opts.OpenSecret != nil {
		l.openSecret = opts.OpenSecret
	}
	root := l.parseYAML(data)
	if root == nil {
		return nil, l.err()
	}
	l.prepare(root, "", 0, map[*yaml.Node]bool{})
	values := l.object(nil, root, nil, "", fileFields(), true, 0)

	cfg := &Config{File: name, Dir: dir}
	l.build(cfg, values)
	l.check(cfg, values, root)
	l.components(cfg, root, reg)
	l.compile(cfg, root)

	if len(l.problems) > 0 {
		return nil, l.err()
	}
	cfg.Warnings = sortProblems(l.warnings)
	return cfg, nil
}

func baseDir(name string) (string, error) {
	if name == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("find working directory: %w", err)
		}
		return wd, nil
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return "", fmt.Errorf("resolve configuration path %q: %w", name, err)
	}
	return filepath.Dir(abs), nil
}

var yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// parseYAML parses one YAML document into a node tree and returns its root
// (an empty document reads as an empty mapping), or nil after a syntax
// error.
func (l *loader) parseYAML(data []byte) (root *yaml.Node) {
	defer func() {
		if r := recover(); r != nil {
			l.problemAt(0, 0, "", "cannot parse YAML: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1, Column: 1}
		}
		l.syntaxError(err)
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		l.problemAt(extra.Line, extra.Column, "", "a second YAML document starts here; a configuration is one document: remove the \"---\" separator and what follows, or merge them")
	case !errors.Is(err, io.EOF):
		l.syntaxError(err)
		return nil
	}
	if len(doc.Content) == 0 {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: 1, Column: 1}
	}
	return doc.Content[0]
}

// syntaxError records a YAML parse error at the line it names.
func (l *loader) syntaxError(err error) {
	msg := err.Error()
	line := 0
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		if isParserProblem(msg) {
			// The YAML parser (unlike its scanner) reports 0-based lines:
			// the line where the unfinished construct starts.
			line++
		}
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	l.problemAt(line, 0, "", "invalid YAML: %s", msg)
}

// isParserProblem reports whether a YAML error message comes from the
// parser rather than the scanner.
func isParserProblem(msg string) bool {
	for _, p := range []string{"did not find expected", "found duplicate %", "found incompatible YAML", "found undefined tag handle"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// build fills cfg from the validated values of the file's own keys.
func (l *loader) build(cfg *Config, v map[string]any) {
	cfg.Version = intOf(v, "version")
	cfg.StateDir = l.abs(strOf(v, "state_dir"))
	lg := mapOf(v, "log")
	cfg.Log = LogConfig{Level: strOf(lg, "level"), Format: strOf(lg, "format")}
	adm := mapOf(v, "admin")
	auth := mapOf(adm, "auth")
	cfg.Admin.Address = strOf(adm, "address")
	cfg.Admin.Debug = adm["debug"] == true
	for _, item := range listOf(auth, "tokens") {
		t, _ := item.(map[string]any)
		cfg.Admin.Tokens = append(cfg.Admin.Tokens, AdminToken{Name: strOf(t, "name"), Role: strOf(t, "role"), Token: strOf(t, "token")})
	}
	for _, p := range listOf(auth, "open_paths") {
		if s, ok := p.(string); ok {
			cfg.Admin.OpenPaths = append(cfg.Admin.OpenPaths, s)
		}
	}
	h := mapOf(v, "http")
	tls := mapOf(h, "tls")
	cfg.HTTP = HTTPConfig{
		Address:     strOf(h, "address"),
		TLS:         TLSConfig{CertFile: l.abs(strOf(tls, "cert_file")), KeyFile: l.abs(strOf(tls, "key_file"))},
		ReadTimeout: durOf(h, "read_timeout"),
	}
	cfg.Shutdown.Timeout = durOf(mapOf(v, "shutdown"), "timeout")
	cfg.Memory.Limit, _ = parseMemoryLimit(strOf(mapOf(v, "memory"), "limit"))
	cfg.Memory.ReleaseStartupCode = mapOf(v, "memory")["release_startup_code"] != false
	tr := mapOf(v, "tracing")
	cfg.Tracing = TracingConfig{Exporter: strOf(tr, "exporter"), Endpoint: strOf(tr, "endpoint"), Protocol: strOf(tr, "protocol"), ServiceName: strOf(tr, "service_name")}
	cfg.Tracing.SampleRatio, _ = tr["sample_ratio"].(float64)
	s := mapOf(v, "stream")
	t := mapOf(s, "topics")
	cfg.Stream = StreamConfig{
		Type:            strOf(s, "type"),
		Topics:          TopicsConfig{Mode: strOf(t, "mode"), Prefix: strOf(t, "prefix"), Name: strOf(t, "name")},
		DeadLetterTopic: strOf(s, "dead_letter_topic"),
		Config:          core.NewConfig("stream", nil),
	}
	for _, item := range listOf(v, "catalog") {
		e, _ := item.(map[string]any)
		cfg.Catalog = append(cfg.Catalog, core.EventType{
			Type:        strOf(e, "type"),
			Version:     strOf(e, "version"),
			Description: strOf(e, "description"),
			Schema:      e["schema"],
			SchemaFile:  strOf(e, "schema_file"),
		})
	}
	for _, item := range listOf(v, "connectors") {
		c, _ := item.(map[string]any)
		r := mapOf(c, "retry")
		cc := ConnectorConfig{
			Name:           strOf(c, "name"),
			Type:           strOf(c, "type"),
			Retry:          RetryConfig{Initial: durOf(r, "initial"), Max: durOf(r, "max")},
			MaxInFlight:    intOf(c, "max_in_flight"),
			OnPublishError: strOf(c, "on_publish_error"),
			Disabled:       c["disabled"] == true,
		}
		cc.Config = core.NewConfig(cc.Name, nil)
		for _, ri := range listOf(c, "emit") {
			rm, _ := ri.(map[string]any)
			cc.Emit = append(cc.Emit, core.Rule{
				Name:         strOf(rm, "name"),
				When:         strOf(rm, "when"),
				Type:         strOf(rm, "type"),
				Subject:      strOf(rm, "subject"),
				PartitionKey: strOf(rm, "partition_key"),
				Time:         strOf(rm, "time"),
				Data:         rm["data"],
				Source:       strOf(rm, "source"),
			})
		}
		cfg.Connectors = append(cfg.Connectors, cc)
	}
	l.buildSinks(cfg, v)
}

// abs resolves a relative path against the configuration's directory.
func (l *loader) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.dir, p)
}

func strOf(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func intOf(m map[string]any, k string) int {
	i, _ := m[k].(int)
	return i
}

func durOf(m map[string]any, k string) time.Duration {
	s, _ := m[k].(string)
	d, _ := time.ParseDuration(s)
	return d
}

func mapOf(m map[string]any, k string) map[string]any {
	v, _ := m[k].(map[string]any)
	return v
}

func listOf(m map[string]any, k string) []any {
	v, _ := m[k].([]any)
	return v
}

// memoryUnits are the units of a memory limit, as GOMEMLIMIT takes them.
var memoryUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// parseMemoryLimit reads a memory limit as GOMEMLIMIT is written: a
// number of bytes, optionally followed by B, KiB, MiB, GiB or TiB, or off
// (-1). "" is 0: none set.
func parseMemoryLimit(s string) (int64, error) {
	switch s {
	case "":
		return 0, nil
	case "off":
		return -1, nil
	}
	num, shift := s, uint(0)
	for _, u := range memoryUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q is not a memory limit: write a positive number of bytes with a unit, such as 64MiB or 1GiB, or off", s)
	}
	return n << shift, nil
}
