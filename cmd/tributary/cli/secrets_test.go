package cli_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.yaml.in/yaml/v3"

	"github.com/tributary/tributary/cmd/tributary/cli"
	"github.com/tributary/tributary/core"
)

// sentinel is the value of every secret in TestSecretsNeverShow. It holds
// only characters that URL, JSON and YAML encoding leave as they are, so a
// leak shows it verbatim.
const sentinel = "SENTINEL-5ecret-8c1e5a"

// secretInstance is one configured connector or stream of
// TestSecretsNeverShow.
type secretInstance struct {
	name   string
	typ    string
	config map[string]any
	// quiet instances are not expected to report an error (the webhook,
	// and the API that answers): their proof of life is a dead letter.
	quiet bool
}

// secretServers are the loopback endpoints the connectors fail against.
type secretServers struct {
	dead     string // host:port where nothing listens
	refuse   string // base URL answering 401, with the request echoed
	badTLS   string // host:port of a TLS server whose certificate nobody trusts
	api      string // base URL answering one record when authenticated
	postgres string // host:port of a PostgreSQL that rejects every password
	cert     []byte // DER certificate of badTLS
}

// TestSecretsNeverShow configures every registered connector and stream
// type with a sentinel in each field declared Secret, makes them fail
// (unreachable host, 401, untrusted certificate, rejected password) and
// produce dead letters, and checks that the sentinel appears in none of
// the logs, the admin API (/v1/connectors, /readyz, /metrics), the
// output of validate, or the dead-letter topic.
func TestSecretsNeverShow(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(sentinel+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := "${file:" + secretFile + "}"
	srv := startSecretServers(t)
	sources := secretSources(srv, ref, dir)
	certFile := filepath.Join(dir, "client.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.cert}), 0o644); err != nil {
		t.Fatal(err)
	}
	streams := secretStreams(srv, ref, certFile)
	checkSecretCoverage(t, sources, streams, ref)

	var leaks []string
	leak := func(where, text string) {
		if i := strings.Index(text, sentinel); i >= 0 {
			leaks = append(leaks, fmt.Sprintf("%s: ...%s...", where, text[max(i-200, 0):min(i+len(sentinel)+80, len(text))]))
		}
	}

	// The embedded stream carries every source.
	file := writeSecretConfig(t, dir, "sources.yaml", streams[0], sources)
	for _, args := range [][]string{{"validate", "-c", file}, {"validate", "--json", "-c", file}} {
		code, out, errOut := runCLI(t, args...)
		if code != 0 {
			t.Errorf("%s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		leak(strings.Join(args, " "), out+errOut)
	}
	runSecretSidecar(t, file, leak, func(admin, hooks string) bool {
		postSecretDeliveries(t, hooks)
		return secretFailuresReported(t, admin, sources)
	})
	code, out, errOut := runCLI(t, "events", "tail", "-c", file, "--dead-letter", "--from-beginning", "--limit", "3")
	if code != 0 {
		t.Errorf("events tail --dead-letter: exit %d: %s", code, errOut)
	}
	if strings.Count(out, "\n") < 3 {
		t.Errorf("events tail --dead-letter printed fewer than 3 dead letters:\n%s", out)
	}
	leak("dead letters", out+errOut)

	// Each other stream runs alone, with one quiet webhook connector.
	hook := secretInstance{name: "inbox", typ: "webhook", config: map[string]any{"path": "/hooks/inbox"}, quiet: true}
	for _, st := range streams[1:] {
		file := writeSecretConfig(t, dir, st.name+".yaml", st, []secretInstance{hook})
		code, out, errOut := runCLI(t, "validate", "-c", file)
		if code != 0 {
			t.Errorf("validate %s: exit %d\n%s%s", st.name, code, out, errOut)
		}
		leak("validate "+st.name, out+errOut)
		runSecretSidecar(t, file, leak, func(admin, _ string) bool {
			var rep runtimeStatus
			getJSON(t, "http://"+admin+"/v1/connectors", &rep)
			return rep.Stream.Error != ""
		})
	}

	for _, l := range leaks {
		t.Errorf("the secret shows in %s", l)
	}
}

// runtimeStatus is the part of GET /v1/connectors the test reads.
type runtimeStatus struct {
	Stream struct {
		State string `json:"state"`
		Error string `json:"error"`
	} `json:"stream"`
	Connectors []struct {
		Name         string         `json:"name"`
		State        string         `json:"state"`
		Error        string         `json:"error"`
		DeadLettered uint64         `json:"dead_lettered"`
		Source       map[string]any `json:"source"`
	} `json:"connectors"`
}

// secretFailuresReported tells whether every connector that should fail
// has reported an error, and the quiet ones a dead letter.
func secretFailuresReported(t *testing.T, admin string, sources []secretInstance) bool {
	t.Helper()
	var rep runtimeStatus
	getJSON(t, "http://"+admin+"/v1/connectors", &rep)
	byName := map[string]int{}
	for i, c := range rep.Connectors {
		byName[c.Name] = i
	}
	for _, s := range sources {
		i, ok := byName[s.name]
		if !ok {
			return false
		}
		c := rep.Connectors[i]
		if s.quiet && c.DeadLettered == 0 {
			return false
		}
		if !s.quiet && c.Error == "" && c.Source["last_error"] == nil {
			return false
		}
	}
	return true
}

// runSecretSidecar runs the sidecar of file until done reports true (or
// 30 seconds pass), then reads its admin API and hands everything it
// showed to leak.
func runSecretSidecar(t *testing.T, file string, leak func(where, text string), done func(admin, hooks string) bool) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	admin, hooks := addressesOf(t, raw)
	logs := &syncBuffer{}
	sc, err := cli.Build(core.DefaultRegistry, file, logs)
	if err != nil {
		t.Errorf("build %s: %v", file, err)
		leak("the error of Build", err.Error())
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- sc.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + admin + "/healthz"); err == nil {
			resp.Body.Close()
			if done(admin, hooks) {
				break
			}
		}
		if time.Now().After(deadline) {
			var st any
			getJSON(t, "http://"+admin+"/v1/connectors", &st)
			t.Errorf("%s: the failures were not all reported within 30s: %v", filepath.Base(file), st)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, path := range []string{"/v1/connectors", "/readyz", "/metrics"} {
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		leak("GET "+path, string(body))
	}
	cancel()
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("sidecar: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sidecar did not stop within 20s")
	}
	leak("the logs", logs.String())
}

// addressesOf reads the admin and HTTP listener addresses back from a
// configuration written by writeSecretConfig.
func addressesOf(t *testing.T, raw []byte) (admin, hooks string) {
	t.Helper()
	var doc struct {
		Admin struct{ Address string } `yaml:"admin"`
		HTTP  struct{ Address string } `yaml:"http"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Admin.Address, doc.HTTP.Address
}

// writeSecretConfig writes a sidecar configuration with stream and
// sources, whose events all break the catalog's schema.
func writeSecretConfig(t *testing.T, dir, name string, stream secretInstance, sources []secretInstance) string {
	t.Helper()
	var conns []any
	for _, s := range sources {
		data := map[string]any{"record": "after", "payload": "payload", "meta": "meta", "endpoint": "source.endpoint", "position": "position"}
		conns = append(conns, map[string]any{
			"name":   s.name,
			"type":   s.typ,
			"config": s.config,
			"retry":  map[string]any{"initial": "50ms", "max": "250ms"},
			"emit":   []any{map[string]any{"name": "seen", "type": "com.example.secret.seen", "data": data}},
		})
	}
	doc := map[string]any{
		"version":   1,
		"state_dir": filepath.Join(dir, name+".state"),
		"log":       map[string]any{"level": "debug"},
		"admin":     map[string]any{"address": freeAddr(t)},
		"http":      map[string]any{"address": freeAddr(t)},
		"shutdown":  map[string]any{"timeout": "10s"},
		"stream":    map[string]any{"type": stream.typ, "config": stream.config},
		"catalog": []any{map[string]any{
			"type": "com.example.secret.seen", "version": "1",
			// No event satisfies the schema: every one is dead-lettered.
			"schema": map[string]any{"type": "object", "required": []any{"never_present"}},
		}},
		"connectors": conns,
	}
	raw, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// secretSources returns source instances covering every source type and
// every secret field, each pointed at a failure.
func secretSources(srv secretServers, ref, dir string) []secretInstance {
	rest := func(url string, auth map[string]any) map[string]any {
		return map[string]any{
			"url": url, "key": []any{"id"}, "cursor": map[string]any{"field": "updated_at"},
			"query":    map[string]any{"since": "{{.Cursor}}", "fields": "id,updated_at"},
			"auth":     auth,
			"schedule": "@every 1s", "timeout": "2s", "retries": 1, "retry_wait": "10ms", "retry_max_wait": "20ms",
		}
	}
	sql := func(driver, dsn string) map[string]any {
		return map[string]any{
			"driver": driver, "dsn": dsn, "table": "orders", "key": []any{"id"},
			"cursor": map[string]any{"column": "updated_at"}, "schedule": "@every 1s", "query_timeout": "2s",
		}
	}
	return []secretInstance{
		// The report: user info in the URL, the key in the query.
		{name: "rest_unreachable", typ: "rest_poll", config: rest("http://apiuser:"+ref+"@"+srv.dead+"/api/invoices",
			map[string]any{"type": "api_key", "query_param": "api_key", "key": ref})},
		{name: "rest_query_key_401", typ: "rest_poll", config: rest(srv.refuse+"/api/invoices",
			map[string]any{"type": "api_key", "query_param": "api_key", "key": ref})},
		{name: "rest_header_key_bad_tls", typ: "rest_poll", config: rest("https://"+srv.badTLS+"/api/invoices",
			map[string]any{"type": "api_key", "header": "X-Api-Key", "key": ref})},
		{name: "rest_basic_401", typ: "rest_poll", config: rest(srv.refuse+"/api/invoices",
			map[string]any{"type": "basic", "username": "apiuser", "password": ref})},
		{name: "rest_bearer_401", typ: "rest_poll", config: rest(srv.refuse+"/api/invoices",
			map[string]any{"type": "bearer", "token": ref})},
		{name: "rest_oauth2_401", typ: "rest_poll", config: rest(srv.refuse+"/api/invoices",
			map[string]any{"type": "oauth2", "token_url": srv.refuse + "/oauth/token", "client_id": "tributary", "client_secret": ref})},
		{name: "rest_answers", typ: "rest_poll", quiet: true, config: rest(srv.api+"/api/invoices",
			map[string]any{"type": "api_key", "query_param": "api_key", "key": ref})},

		{name: "sql_postgres_unreachable", typ: "sql_poll", config: sql("postgres", "postgres://tributary:"+ref+"@"+srv.dead+"/erp?sslmode=disable")},
		{name: "sql_postgres_bad_password", typ: "sql_poll", config: sql("postgres", "postgres://tributary:"+ref+"@"+srv.postgres+"/erp?sslmode=disable")},
		{name: "sql_postgres_bad_tls", typ: "sql_poll", config: sql("postgres", "postgres://tributary:"+ref+"@"+srv.badTLS+"/erp?sslmode=verify-full")},
		{name: "sql_mysql_unreachable", typ: "sql_poll", config: sql("mysql", "tributary:"+ref+"@tcp("+srv.dead+")/erp")},
		{name: "sql_sqlserver_unreachable", typ: "sql_poll", config: sql("sqlserver", "sqlserver://tributary:"+ref+"@"+srv.dead+"?database=erp")},
		{name: "sql_oracle_unreachable", typ: "sql_poll", config: sql("oracle", "oracle://tributary:"+ref+"@"+srv.dead+"/ERP")},
		// A driver that cannot parse the string quotes it.
		{name: "sql_oracle_malformed", typ: "sql_poll", config: sql("oracle", "oracle://tributary:"+ref+"@127.0.0.1:port/ERP")},

		{name: "pg_unreachable", typ: "postgres_cdc", config: map[string]any{"url": "postgres://tributary:" + ref + "@" + srv.dead + "/erp?sslmode=disable"}},
		{name: "pg_bad_password", typ: "postgres_cdc", config: map[string]any{"url": "postgres://tributary:" + ref + "@" + srv.postgres + "/erp?sslmode=disable"}},
		{name: "pg_bad_tls", typ: "postgres_cdc", config: map[string]any{"url": "postgres://tributary:" + ref + "@" + srv.badTLS + "/erp?sslmode=verify-full"}},
		{name: "mysql_unreachable", typ: "mysql_cdc", config: map[string]any{"dsn": "tributary:" + ref + "@tcp(" + srv.dead + ")/shop"}},
		{name: "mysql_not_mysql", typ: "mysql_cdc", config: map[string]any{"dsn": "tributary:" + ref + "@tcp(" + srv.postgres + ")/shop"}},

		{name: "hook_hmac", typ: "webhook", quiet: true, config: map[string]any{
			"path":   "/hooks/hmac",
			"verify": map[string]any{"preset": "hmac", "header": "X-Signature", "prefix": "sha256=", "secrets": []any{"not-the-one", ref}},
		}},
		{name: "hook_basic", typ: "webhook", quiet: true, config: map[string]any{
			"path":   "/hooks/basic",
			"verify": map[string]any{"preset": "basic", "username": "sender", "secrets": []any{ref}},
		}},

		{name: "files_missing", typ: "files_poll", config: map[string]any{"dir": filepath.Join(dir, "no-such-inbox"), "format": "csv", "schedule": "@every 1s"}},
		{name: "plugin_missing", typ: "plugin", config: map[string]any{"command": filepath.Join(dir, "no-such-plugin"), "env": map[string]any{"API_KEY": ref}}},

		{name: "erp_unreachable", typ: "acme_erp_poll", config: map[string]any{"url": "http://" + srv.dead + "/export", "token": ref, "timeout": "2s"}},
		{name: "erp_401", typ: "acme_erp_poll", config: map[string]any{"url": srv.refuse + "/export", "token": ref, "timeout": "2s"}},
	}
}

// secretStreams returns stream instances covering every stream type and
// every secret field. The first is the embedded stream the sources run on.
func secretStreams(srv secretServers, ref, certFile string) []secretInstance {
	return []secretInstance{
		{name: "embedded", typ: "embedded", config: map[string]any{}},
		{name: "kafka_unreachable", typ: "kafka", config: map[string]any{
			"brokers": []any{srv.dead}, "dial_timeout": "1s",
			"sasl": map[string]any{"username": "tributary", "password": ref},
		}},
		{name: "kafka_bad_tls", typ: "kafka", config: map[string]any{
			"brokers": []any{srv.badTLS}, "dial_timeout": "1s",
			"tls":  map[string]any{"enabled": true},
			"sasl": map[string]any{"username": "tributary", "password": ref},
		}},
		{name: "kafka_client_key", typ: "kafka", config: map[string]any{
			"brokers": []any{srv.badTLS}, "dial_timeout": "1s",
			"tls": map[string]any{"enabled": true, "cert_file": certFile, "key_file": ref},
		}},
		{name: "kafka_oauth_token", typ: "kafka", config: map[string]any{
			"brokers": []any{srv.dead}, "dial_timeout": "1s",
			"sasl": map[string]any{"mechanism": "OAUTHBEARER", "token": ref},
		}},
		{name: "kafka_oauth_client", typ: "kafka", config: map[string]any{
			"brokers": []any{srv.badTLS}, "dial_timeout": "1s",
			"tls":  map[string]any{"enabled": true},
			"sasl": map[string]any{"mechanism": "OAUTHBEARER", "token_url": srv.refuse + "/token", "client_id": "tributary", "client_secret": ref},
		}},
	}
}

// checkSecretCoverage fails the test unless every registered source and
// stream type has an instance, and every field declared Secret (nested
// ones included) holds the secret in at least one instance of its type.
func checkSecretCoverage(t *testing.T, sources, streams []secretInstance, ref string) {
	t.Helper()
	check := func(kind, typ string, fields []core.Field, all []secretInstance) {
		var mine []secretInstance
		for _, s := range all {
			if s.typ == typ {
				mine = append(mine, s)
			}
		}
		if len(mine) == 0 {
			t.Errorf("%s type %q has no instance in TestSecretsNeverShow: add one that fails with its secrets set", kind, typ)
			return
		}
		for _, path := range secretPaths("", fields) {
			if !slices.ContainsFunc(mine, func(s secretInstance) bool { return holdsRef(s.config, strings.Split(path, "."), ref) }) {
				t.Errorf("%s type %q: no instance sets its secret field %s", kind, typ, path)
			}
		}
	}
	for _, s := range core.DefaultRegistry.Sources() {
		check("source", s.Type, s.Fields, sources)
	}
	for _, s := range core.DefaultRegistry.Streams() {
		check("stream", s.Type, s.Fields, streams)
	}
}

// secretPaths returns the dotted paths of the fields declared Secret.
func secretPaths(prefix string, fields []core.Field) []string {
	var out []string
	for _, f := range fields {
		if f.Secret {
			out = append(out, prefix+f.Name)
		}
		out = append(out, secretPaths(prefix+f.Name+".", f.Fields)...)
	}
	return out
}

// holdsRef tells whether the value at path in v (any element of a list
// on the way) contains ref.
func holdsRef(v any, path []string, ref string) bool {
	switch x := v.(type) {
	case []any:
		return slices.ContainsFunc(x, func(e any) bool { return holdsRef(e, path, ref) })
	case map[string]any:
		return len(path) > 0 && holdsRef(x[path[0]], path[1:], ref)
	case string:
		return len(path) == 0 && strings.Contains(x, ref)
	}
	return false
}

// startSecretServers starts the loopback endpoints of secretServers.
func startSecretServers(t *testing.T) secretServers {
	t.Helper()
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Some APIs quote the request they refuse, credentials included.
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":"invalid credentials for %s %s"}`, r.URL.RequestURI(), body)
	}))
	t.Cleanup(refuse.Close)
	badTLS := httptest.NewUnstartedServer(http.NotFoundHandler())
	badTLS.Config.ErrorLog = log.New(io.Discard, "", 0)
	badTLS.StartTLS()
	t.Cleanup(badTLS.Close)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("api_key") != sentinel {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[{"id":"INV-1","updated_at":"2024-05-01T10:00:00Z","total":12.5}]`)
	}))
	t.Cleanup(api.Close)
	return secretServers{
		dead:     freeAddr(t),
		refuse:   refuse.URL,
		badTLS:   strings.TrimPrefix(badTLS.URL, "https://"),
		api:      api.URL,
		postgres: startRejectingPostgres(t),
		cert:     badTLS.Certificate().Raw,
	}
}

// startRejectingPostgres serves the PostgreSQL protocol far enough to ask
// for a password and reject it, as a server does when the password is
// wrong.
func startRejectingPostgres(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				be := pgproto3.NewBackend(conn, conn)
				for {
					msg, err := be.ReceiveStartupMessage()
					if err != nil {
						return
					}
					switch msg.(type) {
					case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
						if _, err := conn.Write([]byte("N")); err != nil {
							return
						}
						continue
					}
					break
				}
				be.Send(&pgproto3.AuthenticationCleartextPassword{})
				if be.Flush() != nil {
					return
				}
				if be.SetAuthType(pgproto3.AuthTypeCleartextPassword) != nil {
					return
				}
				if _, err := be.Receive(); err != nil {
					return
				}
				be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "tributary"`})
				be.Flush()
			})
		}
	})
	return ln.Addr().String()
}

// postSecretDeliveries sends each webhook connector a delivery it refuses
// (a wrong signature or password) and one it accepts, whose event is
// dead-lettered.
func postSecretDeliveries(t *testing.T, hooks string) {
	t.Helper()
	body := `{"id":"A-1","total":12.5}`
	mac := hmac.New(sha256.New, []byte(sentinel))
	mac.Write([]byte(body))
	for _, d := range []struct {
		path   string
		header func(h http.Header)
	}{
		{"/hooks/hmac", func(h http.Header) { h.Set("X-Signature", "sha256=00") }},
		{"/hooks/hmac", func(h http.Header) { h.Set("X-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil))) }},
		{"/hooks/basic", func(h http.Header) { h.Set("Authorization", "Basic c2VuZGVyOndyb25n") }},
		{"/hooks/basic", func(h http.Header) {
			r := http.Request{Header: h}
			r.SetBasicAuth("sender", sentinel)
		}},
	} {
		req, _ := http.NewRequest("POST", "http://"+hooks+d.path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		d.header(req.Header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue // the listener is not up yet: the next round sends again
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// syncBuffer is a bytes.Buffer safe for the sidecar's concurrent logging.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
