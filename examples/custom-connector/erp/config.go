package erp

import (
	"errors"
	"net/url"
	"time"

	"github.com/tributary/tributary/core"
)

// Config is the connector's configuration, the `config:` block of an
// acme_erp_poll connector. Each key is declared once, by the tags of its
// field: yaml (the key), doc (one line for users; longer explanations go
// in the README), default, required, enum, secret and example. The
// registry reads them once, when Spec registers Config{}, into the field
// list behind validation, `tributary connectors` and the config JSON
// Schema, and Configure decodes into this struct with the same defaults.
// A new key is one line here (plus its check in Validate, if tags cannot
// say what makes it valid).
type Config struct {
	URL          string        `yaml:"url" required:"true" example:"http://erp.internal:8080/export" doc:"Base URL of the ERP's XML export service."`
	Entity       string        `yaml:"entity" default:"orders" enum:"orders,customers" doc:"Exported entity to follow."`
	PollInterval time.Duration `yaml:"poll_interval" default:"5s" doc:"Wait between two polls that found nothing new."`
	BatchSize    int           `yaml:"batch_size" default:"500" doc:"Most records asked for in one request."`
	Timeout      time.Duration `yaml:"timeout" default:"10s" doc:"Bound of one HTTP request."`
	// Token is sent as "Authorization: Bearer <token>". Write it as a
	// reference such as ${file:/run/secrets/erp_token}.
	Token string `yaml:"token" secret:"true" doc:"Bearer token sent with every request, as a secret reference."`
}

// Validate reports every problem at once, one *core.FieldError each: what
// the tags cannot say (a URL that must parse, bounds), and the enum again,
// since Configure may be called without the configuration loader. It does
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
	if c.PollInterval <= 0 {
		errs = append(errs, core.FieldErrorf("poll_interval", "must be positive, got %s", c.PollInterval))
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs = append(errs, core.FieldErrorf("batch_size", "must be between 1 and 10000, got %d", c.BatchSize))
	}
	if c.Timeout <= 0 {
		errs = append(errs, core.FieldErrorf("timeout", "must be positive, got %s", c.Timeout))
	}
	return errors.Join(errs...)
}
