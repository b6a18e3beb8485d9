package plugin

import (
	"errors"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/plugin"
)

// Config is the `config:` block of a plugin connector.
type Config struct {
	// Command is the plugin executable: a path, or a name looked up in
	// PATH. A relative path is resolved against the sidecar's working
	// directory. Required.
	Command string `yaml:"command"`
	// Args are the executable's arguments.
	Args []string `yaml:"args"`
	// Env adds variables to the plugin's environment, which otherwise is
	// the sidecar's.
	Env map[string]string `yaml:"env"`
	// Transport is grpc (a Go plugin built with plugin.Serve, over a Unix
	// socket) or jsonl (any language, JSON Lines on stdin and stdout).
	// Default grpc.
	Transport string `yaml:"transport"`
	// Config is passed to the plugin; the plugin validates it. When
	// Manifest is set, the configuration loader has checked it offline
	// against the manifest's fields and applied their defaults.
	Config any `yaml:"config"`
	// Manifest names a file declaring the fields of Config, read by the
	// configuration loader (see NestedConfig), never by the connector.
	Manifest string `yaml:"manifest"`
	// StartTimeout bounds starting the plugin, its handshake, its
	// configuration and its Open. Default 30s.
	StartTimeout time.Duration `yaml:"start_timeout"`
	// Credits is the most changes the plugin may have sent and the runtime
	// not yet read: the bound on the sidecar's buffer. Default 1000.
	Credits int `yaml:"credits"`
	// HeartbeatTimeout is how long the plugin may stay silent (no change,
	// no heartbeat, no answer) before it is taken as hung, killed and
	// restarted. Default 10s.
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout"`
}

// Fields declares the configuration.
func Fields() []core.Field {
	return []core.Field{
		{Name: "command", Type: core.TypeString, Required: true, Doc: "Plugin executable: a path, or a name looked up in PATH.", Example: "/opt/tributary/plugins/soap-orders"},
		{Name: "args", Type: core.TypeStrings, Doc: "Arguments of the plugin executable."},
		{Name: "env", Type: core.TypeMap, Doc: "Variables added to the plugin's environment, which otherwise is the sidecar's."},
		{Name: "transport", Type: core.TypeString, Default: plugin.TransportGRPC, Enum: []string{plugin.TransportGRPC, plugin.TransportJSONL}, Doc: "grpc for Go plugins built with plugin.Serve; jsonl for any language speaking JSON Lines on stdin and stdout."},
		{Name: "config", Type: core.TypeAny, Doc: "The plugin's own configuration, validated by the plugin when it starts, and offline too when manifest declares its fields."},
		{Name: "manifest", Type: core.TypeString, Doc: "File declaring the fields of the plugin's config (a YAML list under fields, as connectors declare theirs), relative to the configuration file's directory; with it, validate checks config offline.", Example: "plugins/soap-orders.manifest.yaml"},
		{Name: "start_timeout", Type: core.TypeDuration, Default: "30s", Doc: "Bound on starting the plugin, its handshake, configuration and Open."},
		{Name: "credits", Type: core.TypeInt, Default: 1000, Doc: "Most changes the plugin may send ahead of the runtime reading them; bounds the sidecar's buffer."},
		{Name: "heartbeat_timeout", Type: core.TypeDuration, Default: "10s", Doc: "Silence after which the plugin is taken as hung, killed and restarted from the last committed position."},
	}
}

// NestedConfig names the plugin's own settings, the "config" block, and
// the key of the manifest that declares their fields, "manifest", so that
// the configuration loader checks that block offline against it
// (config.Nested). It does no I/O.
func (s *Source) NestedConfig() (block, manifest string) { return "config", "manifest" }

func (c *Config) applyDefaults() {
	if c.Transport == "" {
		c.Transport = plugin.TransportGRPC
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.Credits == 0 {
		c.Credits = 1000
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 10 * time.Second
	}
}

// Validate reports every problem at once. It does no I/O: the executable
// is looked for, and the plugin's own config checked by it, in Open.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Command) == "" {
		errs = append(errs, core.FieldErrorf("command", "is required: set the path of the plugin executable"))
	}
	if c.Transport != plugin.TransportGRPC && c.Transport != plugin.TransportJSONL {
		errs = append(errs, core.FieldErrorf("transport", "%q is not one of grpc, jsonl", c.Transport))
	}
	if c.StartTimeout < 0 {
		errs = append(errs, core.FieldErrorf("start_timeout", "must be positive, got %s", c.StartTimeout))
	}
	if c.Credits < 1 || c.Credits > 1_000_000 {
		errs = append(errs, core.FieldErrorf("credits", "must be between 1 and 1000000, got %d", c.Credits))
	}
	if c.HeartbeatTimeout < 100*time.Millisecond {
		errs = append(errs, core.FieldErrorf("heartbeat_timeout", "must be at least 100ms, got %s", c.HeartbeatTimeout))
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, core.FieldErrorf("env", "%q is not a valid variable name", k))
		}
		if strings.HasPrefix(k, "TRIBUTARY_PLUGIN") {
			errs = append(errs, core.FieldErrorf("env."+k, "is set by the sidecar itself"))
		}
	}
	if c.Config != nil {
		if _, ok := c.Config.(map[string]any); !ok {
			errs = append(errs, core.FieldErrorf("config", "must be a mapping of the plugin's own settings"))
		}
	}
	return errors.Join(errs...)
}

// heartbeat is the interval the plugin is asked to send at: a fifth of the
// timeout, so that a few late beats are not taken as a hang.
func (c Config) heartbeat() time.Duration { return c.HeartbeatTimeout / 5 }
