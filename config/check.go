package config

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var connectorNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// check runs the checks that involve more than one field or that a field
// type cannot express. It only looks at values that decoded (v holds them),
// so a bad value is reported once, by its type check.
func (l *loader) check(cfg *Config, v map[string]any, root *yaml.Node) {
	at := func(path string, format string, args ...any) {
		key, val := l.locate(root, path)
		l.problem(key, val, path, format, args...)
	}
	if _, ok := v["version"]; ok && cfg.Version != 1 {
		at("version", "unsupported version %d: this build reads version 1", cfg.Version)
	}
	if _, ok := v["state_dir"]; ok && cfg.StateDir == "" {
		at("state_dir", `must not be empty: name a directory, such as ".tributary"`)
	}

	if a := cfg.Admin.Address; a != "" && checkAddress(a) != "" {
		at("admin.address", "%s", checkAddress(a))
	} else if a != "" && len(cfg.Admin.Tokens) == 0 && !loopbackAddress(a) {
		at("admin.address", "%s is not a loopback address, and the admin API acts on the sidecar: set admin.auth.tokens (bearer tokens, such as {name: ops, role: operator, token: ${env:TRIBUTARY_ADMIN_TOKEN}}), or listen on 127.0.0.1", a)
	}
	seenToken := map[string]int{}
	for i, t := range cfg.Admin.Tokens {
		path := fmt.Sprintf("admin.auth.tokens[%d]", i)
		if t.Token != "" && len(t.Token) < 16 {
			at(path+".token", "is %d characters long; a token needs at least 16 (generate one with: openssl rand -hex 32)", len(t.Token))
		}
		if j, dup := seenToken[t.Token]; dup && t.Token != "" {
			at(path+".token", "is the same token as admin.auth.tokens[%d]: give each holder a token of its own", j)
		}
		seenToken[t.Token] = i
	}
	for i, p := range cfg.Admin.OpenPaths {
		if !strings.HasPrefix(p, "/") {
			at(fmt.Sprintf("admin.auth.open_paths[%d]", i), "%q is not a path: write it from the root, such as /healthz", p)
		}
	}
	h := mapOf(v, "http")
	if a := cfg.HTTP.Address; a != "" && checkAddress(a) != "" {
		at("http.address", "%s", checkAddress(a))
	}
	if t := cfg.HTTP.TLS; (t.CertFile == "") != (t.KeyFile == "") {
		missing := "key_file"
		if t.CertFile == "" {
			missing = "cert_file"
		}
		at("http.tls", "set both cert_file and key_file, or neither (%s is missing)", missing)
	}
	if _, ok := h["read_timeout"]; ok && cfg.HTTP.ReadTimeout <= 0 {
		at("http.read_timeout", "must be positive, such as 10s")
	}
	if _, ok := mapOf(v, "shutdown")["timeout"]; ok && cfg.Shutdown.Timeout <= 0 {
		at("shutdown.timeout", "must be positive, such as 30s")
	}
	if lim := strOf(mapOf(v, "memory"), "limit"); lim != "" {
		if _, err := parseMemoryLimit(lim); err != nil {
			at("memory.limit", "%v", err)
		}
	}
	if r := cfg.Tracing.SampleRatio; r < 0 || r > 1 {
		at("tracing.sample_ratio", "must be between 0 and 1, such as 0.1 to trace one change in ten")
	}

	s := mapOf(v, "stream")
	t := mapOf(s, "topics")
	if _, ok := t["name"]; ok && cfg.Stream.Topics.Mode == TopicsSingle && cfg.Stream.Topics.Name == "" {
		at("stream.topics.name", "single mode needs a topic name, such as %q", DefaultTopic)
	}
	if _, ok := s["dead_letter_topic"]; ok && cfg.Stream.DeadLetterTopic == "" {
		at("stream.dead_letter_topic", "must not be empty: events that cannot be delivered need a topic, such as %q", DefaultDeadLetterTopic)
	}

	list := listOf(v, "connectors")
	first := map[string]int{}
	for i, c := range cfg.Connectors {
		base := fmt.Sprintf("connectors[%d]", i)
		cv, _ := list[i].(map[string]any)
		switch j, dup := first[c.Name]; {
		case c.Name == "":
		case !connectorNameRe.MatchString(c.Name):
			at(base+".name", "%q is not a valid connector name: use lowercase letters, digits and underscores, starting with a letter (such as legacy_orders)", c.Name)
		case dup:
			line, _ := position(l.locate(root, fmt.Sprintf("connectors[%d].name", j)))
			at(base+".name", "connector name %q is already used by connectors[%d] (line %d); names must be unique", c.Name, j, line)
		default:
			first[c.Name] = i
		}
		r := mapOf(cv, "retry")
		_, hasInitial := r["initial"]
		_, hasMax := r["max"]
		switch {
		case hasInitial && c.Retry.Initial <= 0:
			at(base+".retry.initial", "must be positive, such as 1s")
		case hasInitial && hasMax && c.Retry.Max < c.Retry.Initial:
			at(base+".retry.max", "%s is shorter than retry.initial (%s): raise max or lower initial", c.Retry.Max, c.Retry.Initial)
		}
		if _, ok := cv["max_in_flight"]; ok && c.MaxInFlight < 1 {
			at(base+".max_in_flight", "must be at least 1, such as %d", DefaultMaxInFlight)
		}
		if _, ok := cv["emit"]; !ok || len(c.Emit) == 0 {
			key, val := l.locate(root, base)
			name := c.Name
			if name == "" {
				name = base
			}
			l.warn(key, val, base, "connector %q emits nothing: add emit rules, or set disabled: true", name)
		}
	}
	l.checkSinks(cfg, v, root)
}

// checkAddress returns why a listen address is invalid, or "".
func checkAddress(a string) string {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Sprintf("%q is not a listen address: write host:port, such as 127.0.0.1:8080 (\":8080\" listens on every interface)", a)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Sprintf("%q has no valid port: use a number from 0 to 65535, such as 127.0.0.1:8080", a)
	}
	return ""
}

// loopbackAddress reports whether the host of addr (host:port) is a
// loopback address or localhost. An empty host listens on every address.
func loopbackAddress(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
