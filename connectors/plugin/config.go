package plugin

import (
	"errors"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/plugin"
)

// Config is the `config:` block of a plugin connector. Each key is
// declared once, by the tags of its field: the registry derives the field
// list (validation, `tributary connectors`, the config schema) from them,
// and Configure decodes into this struct with the same defaults.
type Config struct {
	// Command is the plugin executable; a relative path is resolved
	// against the sidecar's working directory.
	Command   string            `yaml:"command" required:"true" example:"/opt/tributary/plugins/soap-orders" doc:"Plugin executable: a path, or a name looked up in PATH."`
	Args      []string          `yaml:"args" doc:"Arguments of the plugin executable."`
	Env       map[string]string `yaml:"env" doc:"Variables added to the plugin's environment, which otherwise is the sidecar's."`
	Transport string            `yaml:"transport" default:"grpc" enum:"grpc,jsonl" doc:"grpc for Go plugins built with plugin.Serve; jsonl for any language speaking JSON Lines on stdin and stdout."`
	// Config is passed to the plugin, which validates it. When Manifest is
	// set, the configuration loader has checked it offline against the
	// manifest's fields and applied their defaults (see NestedConfig).
	Config any `yaml:"config" doc:"The plugin's own configuration, validated by the plugin when it starts, and offline too when manifest declares its fields."`
	// Manifest is read by the configuration loader, never by the
	// connector.
	Manifest         string        `yaml:"manifest" example:"plugins/soap-orders.manifest.yaml" doc:"File declaring the fields of the plugin's config (a YAML list under fields, as connectors declare theirs), relative to the configuration file's directory; with it, validate checks config offline."`
	StartTimeout     time.Duration `yaml:"start_timeout" default:"30s" doc:"Bound on starting the plugin, its handshake, configuration and Open."`
	Credits          int           `yaml:"credits" default:"1000" doc:"Most changes the plugin may send ahead of the runtime reading them; bounds the sidecar's buffer."`
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout" default:"10s" doc:"Silence after which the plugin is taken as hung, killed and restarted from the last committed position."`
}

// NestedConfig names the plugin's own settings, the "config" block, and
// the key of the manifest that declares their fields, "manifest", so that
// the configuration loader checks that block offline against it
// (config.Nested). Both are keys Config declares. It does no I/O.
func (s *Source) NestedConfig() (block, manifest string) { return "config", "manifest" }

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
	if c.StartTimeout <= 0 {
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
