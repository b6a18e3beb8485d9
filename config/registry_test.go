package config_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/tributary/tributary/core"
)

// hookConfig is the fake webhook connector's typed configuration.
type hookConfig struct {
	Path       string            `yaml:"path"`
	Secret     string            `yaml:"secret"`
	Batch      int               `yaml:"batch"`
	Interval   string            `yaml:"interval"`
	Mode       string            `yaml:"mode"`
	Verify     bool              `yaml:"verify"`
	Ratio      float64           `yaml:"ratio"`
	Headers    map[string]string `yaml:"headers"`
	RequireTLS bool              `yaml:"require_tls"`
	LegacyOpt  string            `yaml:"legacy_opt"`
	Extra      any               `yaml:"extra"`
	TLS        *struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	Tables []struct {
		Name string   `yaml:"name"`
		Key  []string `yaml:"key"`
	} `yaml:"tables"`
}

// fakeSource is a source whose Configure reports field errors the way real
// connectors do.
type fakeSource struct {
	core.SourceFunc
	cfg hookConfig
}

func (s *fakeSource) Configure(cfg core.Config) error {
	if err := cfg.Decode(&s.cfg); err != nil {
		return err
	}
	var errs []error
	for i, t := range s.cfg.Tables {
		if t.Name == "bad" {
			errs = append(errs, core.FieldErrorf(fmt.Sprintf("tables[%d].name", i), "table %q does not exist in the mapping", t.Name))
		}
	}
	if s.cfg.RequireTLS && s.cfg.TLS == nil {
		errs = append(errs, core.FieldErrorf("tls.cert_file", "required when require_tls is true"))
	}
	if s.cfg.Path == "/panic" {
		panic("boom")
	}
	if s.cfg.Path == "/plain" {
		errs = append(errs, errors.New("plain error without a field"))
	}
	return errors.Join(errs...)
}

var webhookFields = []core.Field{
	{Name: "path", Type: core.TypeString, Required: true, Doc: "URL path the endpoint listens on.", Example: "/hooks/orders"},
	{Name: "secret", Type: core.TypeString, Required: true, Secret: true, Doc: "Shared secret for signatures."},
	{Name: "batch", Type: core.TypeInt, Default: 100, Doc: "Batch size."},
	{Name: "interval", Type: core.TypeDuration, Default: "5s", Doc: "Flush interval."},
	{Name: "mode", Type: core.TypeString, Default: "push", Enum: []string{"push", "pull"}, Doc: "Delivery mode."},
	{Name: "verify", Type: core.TypeBool, Default: true, Doc: "Verify signatures."},
	{Name: "ratio", Type: core.TypeFloat, Doc: "Sampling ratio."},
	{Name: "headers", Type: core.TypeMap, Doc: "Extra headers."},
	{Name: "require_tls", Type: core.TypeBool, Doc: "Refuse plain HTTP."},
	{Name: "legacy_opt", Type: core.TypeString, Deprecated: "use mode instead", Doc: "Old switch."},
	{Name: "extra", Type: core.TypeAny, Doc: "Free-form settings."},
	{Name: "tls", Type: core.TypeObject, Doc: "Client TLS.", Fields: []core.Field{
		{Name: "cert_file", Type: core.TypeString, Required: true, Doc: "Certificate."},
		{Name: "key_file", Type: core.TypeString, Secret: true, Doc: "Key."},
	}},
	{Name: "tables", Type: core.TypeObjects, Doc: "Tables to watch.", Fields: []core.Field{
		{Name: "name", Type: core.TypeString, Required: true, Doc: "Table name."},
		{Name: "key", Type: core.TypeStrings, Default: []string{"id"}, Doc: "Key columns."},
	}},
}

// fakeStream is a stream whose Configure rejects one directory.
type fakeStream struct {
	cfg struct {
		Dir   string `yaml:"dir"`
		Fsync bool   `yaml:"fsync"`
	}
}

func (s *fakeStream) Configure(cfg core.Config) error {
	if err := cfg.Decode(&s.cfg); err != nil {
		return err
	}
	if s.cfg.Dir == "/forbidden" {
		return core.FieldErrorf("dir", "directory %q is not writable", s.cfg.Dir)
	}
	return nil
}
func (s *fakeStream) Open(context.Context, core.Env) error { return nil }
func (s *fakeStream) Publisher() message.Publisher         { return nil }
func (s *fakeStream) Subscriber(core.SubscribeOptions) (message.Subscriber, error) {
	return nil, errors.New("not supported")
}
func (s *fakeStream) Checkpoints() core.CheckpointStore { return nil }
func (s *fakeStream) Ping(context.Context) error        { return nil }
func (s *fakeStream) Close(context.Context) error       { return nil }

var _ core.Stream = (*fakeStream)(nil)
var _ core.Source = (*fakeSource)(nil)

// hookSinkConfig is the fake http sink's typed configuration.
type hookSinkConfig struct {
	URL     string        `yaml:"url" required:"true" doc:"Where deliveries go." example:"https://wms.local/orders"`
	Method  string        `yaml:"method" default:"POST" enum:"POST,PUT" doc:"HTTP method."`
	Timeout time.Duration `yaml:"timeout" default:"10s" doc:"Longest time one delivery takes."`
	Token   string        `yaml:"token" secret:"true" doc:"Bearer token."`
}

// fakeSink is a sink whose Configure reports field errors the way real
// sinks do.
type fakeSink struct {
	core.SinkFunc
	cfg hookSinkConfig
}

func (s *fakeSink) Configure(cfg core.Config) error {
	if err := cfg.Decode(&s.cfg); err != nil {
		return err
	}
	if !strings.HasPrefix(s.cfg.URL, "http://") && !strings.HasPrefix(s.cfg.URL, "https://") {
		return core.FieldErrorf("url", "%q is not an http or https URL", s.cfg.URL)
	}
	return nil
}

var _ core.Sink = (*fakeSink)(nil)

// testRegistry registers a webhook-like source, a second source type, two
// stream types and two sink types.
func testRegistry() *core.Registry {
	reg := core.NewRegistry()
	reg.RegisterSink(core.SinkSpec{Type: "http", Summary: "Posts events.", Config: hookSinkConfig{}, New: func() core.Sink { return &fakeSink{} }})
	reg.RegisterSink(core.SinkSpec{Type: "audit", Summary: "Logs every event.", New: func() core.Sink { return core.SinkFunc(nil) }})
	reg.RegisterSource(core.SourceSpec{Type: "webhook", Summary: "Receives pushes.", Fields: webhookFields, New: func() core.Source { return &fakeSource{} }})
	reg.RegisterSource(core.SourceSpec{Type: "poller", Summary: "Polls.", Fields: []core.Field{
		{Name: "url", Type: core.TypeString, Required: true, Doc: "What to poll."},
	}, New: func() core.Source { return &fakeSource{} }})
	reg.RegisterStream(core.StreamSpec{Type: "embedded", Summary: "Local.", Fields: []core.Field{
		{Name: "dir", Type: core.TypeString, Default: "", Doc: "Data directory."},
		{Name: "fsync", Type: core.TypeBool, Default: true, Doc: "Sync every write."},
	}, New: func() core.Stream { return &fakeStream{} }})
	reg.RegisterStream(core.StreamSpec{Type: "kafka", Summary: "Kafka.", Fields: []core.Field{
		{Name: "brokers", Type: core.TypeStrings, Required: true, Doc: "Bootstrap brokers."},
	}, New: func() core.Stream { return &fakeStream{} }})
	return reg
}
