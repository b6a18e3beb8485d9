package erp

import (
	"errors"
	"net/url"
	"time"

	"github.com/tributary/tributary/core"
)

// Config is the connector's configuration, the `config:` block of an
// acme_erp_poll connector. The doc comments are the user documentation.
type Config struct {
	// URL is the base URL of the ERP's XML export service, such as
	// http://erp.internal:8080/export. Required.
	URL string `yaml:"url"`
	// Entity is the exported entity to follow. Default "orders".
	Entity string `yaml:"entity"`
	// PollInterval is the wait between two polls that found nothing new.
	// Default 5s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// BatchSize is the most records asked for in one request. Default 500.
	BatchSize int `yaml:"batch_size"`
	// Timeout bounds one HTTP request. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Token is sent as "Authorization: Bearer <token>" when set. Write it as
	// a reference such as ${file:/run/secrets/erp_token}.
	Token string `yaml:"token"`
}

// Fields declares the configuration for the registry: validation, defaults,
// `tributary connectors` and the config JSON Schema all come from here.
func Fields() []core.Field {
	return []core.Field{
		{Name: "url", Type: core.TypeString, Required: true, Doc: "Base URL of the ERP's XML export service.", Example: "http://erp.internal:8080/export"},
		{Name: "entity", Type: core.TypeString, Default: "orders", Enum: []string{"orders", "customers"}, Doc: "Exported entity to follow."},
		{Name: "poll_interval", Type: core.TypeDuration, Default: "5s", Doc: "Wait between two polls that found nothing new."},
		{Name: "batch_size", Type: core.TypeInt, Default: 500, Doc: "Most records asked for in one request."},
		{Name: "timeout", Type: core.TypeDuration, Default: "10s", Doc: "Bound of one HTTP request."},
		{Name: "token", Type: core.TypeString, Secret: true, Doc: "Bearer token sent with every request, as a secret reference."},
	}
}

// applyDefaults fills what the YAML left out. The config loader applies the
// declared defaults too; doing it here keeps programmatic use safe.
func (c *Config) applyDefaults() {
	if c.Entity == "" {
		c.Entity = "orders"
	}
	if c.PollInterval == 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
}

// Validate reports every problem at once, one *core.FieldError each. It does
// no I/O: reaching the ERP is Open's job.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, core.FieldErrorf("url", "is required: set the base URL of the ERP export service"))
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, core.FieldErrorf("url", "%q is not an http(s) URL with a host", c.URL))
	}
	if c.Entity != "orders" && c.Entity != "customers" {
		errs = append(errs, core.FieldErrorf("entity", "%q is not one of orders, customers", c.Entity))
	}
	if c.PollInterval < 0 {
		errs = append(errs, core.FieldErrorf("poll_interval", "must be positive, got %s", c.PollInterval))
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs = append(errs, core.FieldErrorf("batch_size", "must be between 1 and 10000, got %d", c.BatchSize))
	}
	if c.Timeout < 0 {
		errs = append(errs, core.FieldErrorf("timeout", "must be positive, got %s", c.Timeout))
	}
	return errors.Join(errs...)
}
