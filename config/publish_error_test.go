package config_test

import (
	"strings"
	"testing"
)

func TestOnPublishError(t *testing.T) {
	cfg, err := parse(t, validYAML)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Connectors[0].OnPublishError; got != "dead_letter" {
		t.Fatalf("default on_publish_error = %q, want dead_letter", got)
	}
	cfg, err = parse(t, edit(t, validYAML, "    retry: {initial: 2s, max: 30s}", "    retry: {initial: 2s, max: 30s}\n    on_publish_error: stop"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Connectors[0].OnPublishError; got != "stop" {
		t.Fatalf("on_publish_error = %q, want stop", got)
	}
	_, err = parse(t, edit(t, validYAML, "    retry: {initial: 2s, max: 30s}", "    retry: {initial: 2s, max: 30s}\n    on_publish_error: skip"))
	if err == nil || !strings.Contains(err.Error(), "connectors[0].on_publish_error") || !strings.Contains(err.Error(), `"dead_letter"`) {
		t.Fatalf("on_publish_error: skip gave %v, want an error naming the field and the allowed values", err)
	}
}
