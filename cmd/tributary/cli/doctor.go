package cli

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
)

// Diagnoser is the optional capability of a stream, source or sink that
// `tributary doctor` uses besides its own checks: Diagnose connects to
// what the configuration names and returns what will not work, each
// finding saying how to fix it. It does no provisioning and changes
// nothing. It is called after Configure, without Open, and returns once
// ctx is done.
type Diagnoser interface {
	Diagnose(ctx context.Context, env core.Env) []Finding
}

// Finding is one thing doctor checked.
type Finding struct {
	// Component is what the check is about: "stream", "connector NAME",
	// "sink NAME", "state_dir".
	Component string `json:"component"`
	Check     string `json:"check"`
	// Severity is ok, warning (works, but not as it should in production)
	// or error (will not work).
	Severity string `json:"severity"`
	Detail   string `json:"detail,omitempty"`
	Fix      string `json:"fix,omitempty"`
}

// Doctor finding severities.
const (
	SeverityOK      = "ok"
	SeverityWarning = "warning"
	SeverityError   = "error"
)

func newDoctorCmd(reg *core.Registry) *cobra.Command {
	var file string
	var asJSON bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "doctor -c FILE [--json]",
		Short: "Connect to everything the configuration names and report, per connector and sink, what will not work and how to fix it",
		Long: "Check the state directory, the stream (reachable; Kafka topics' min.insync.replicas and the checkpoint topic's " +
			"compaction), PostgreSQL CDC connectors (wal_level, replication permission, the slot active elsewhere, the " +
			"publication's tables), MySQL/MariaDB CDC connectors (binlog on, row format, full row image, retention, " +
			"replication grants), HTTP endpoints (reachable) and directories (present, writable); components that implement " +
			"doctor's Diagnoser check themselves too. " +
			"Nothing is changed beyond what starting the sidecar would create (the state directory, the embedded stream's file). " +
			"Exit 0 when there is no error, 1 otherwise.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfigFile(reg, file)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			fs := diagnose(ctx, reg, cfg)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(map[string]any{"ok": !hasErrors(fs), "findings": fs}); err != nil {
					return err
				}
			} else {
				printFindings(cmd.OutOrStdout(), fs)
			}
			if hasErrors(fs) {
				return &exitError{code: ExitError}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "tributary.yaml", "configuration file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the findings as JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "how long all checks may take")
	return cmd
}

func hasErrors(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == SeverityError })
}

func printFindings(w io.Writer, fs []Finding) {
	errs, warns := 0, 0
	for _, f := range fs {
		mark := "ok  "
		switch f.Severity {
		case SeverityError:
			mark, errs = "FAIL", errs+1
		case SeverityWarning:
			mark, warns = "WARN", warns+1
		}
		fmt.Fprintf(w, "%s %s: %s", mark, f.Component, f.Check)
		if f.Detail != "" {
			fmt.Fprintf(w, ": %s", f.Detail)
		}
		fmt.Fprintln(w)
		if f.Fix != "" {
			fmt.Fprintf(w, "     fix: %s\n", f.Fix)
		}
	}
	fmt.Fprintf(w, "%d checks, %d errors, %d warnings\n", len(fs), errs, warns)
}

// diagnose runs every check cfg calls for.
func diagnose(ctx context.Context, reg *core.Registry, cfg *config.Config) []Finding {
	var fs []Finding
	fs = append(fs, checkWritableDir("state_dir", "state_dir", cfg.StateDir))
	for _, l := range []struct{ key, addr string }{{"admin.address", cfg.Admin.Address}, {"http.address", cfg.HTTP.Address}} {
		if l.addr != "" {
			fs = append(fs, checkListen(l.key, l.addr))
		}
	}
	fs = append(fs, diagnoseStream(ctx, reg, cfg)...)
	env := func(name string) core.Env {
		return core.Env{Name: name, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StateDir: filepath.Join(cfg.StateDir, name)}
	}
	for _, cc := range cfg.Connectors {
		comp := "connector " + cc.Name
		if cc.Disabled {
			fs = append(fs, Finding{Component: comp, Check: "disabled", Severity: SeverityOK, Detail: "not checked"})
			continue
		}
		v := cc.Config.Values
		switch cc.Type {
		case "postgres_cdc":
			fs = append(fs, diagnosePostgres(ctx, comp, cc.Name, v)...)
		case "mysql_cdc":
			fs = append(fs, diagnoseMySQL(ctx, comp, v)...)
		}
		if cc.Type == "rest_poll" {
			fs = append(fs, diagnoseREST(ctx, comp, "connectors."+cc.Name+".config", v))
		} else {
			fs = append(fs, diagnoseValues(ctx, comp, "connectors."+cc.Name+".config", v)...)
		}
		if src, err := cc.NewSource(reg); err == nil {
			if d, ok := src.(Diagnoser); ok {
				fs = append(fs, d.Diagnose(ctx, env(cc.Name))...)
			}
		}
	}
	for _, sk := range cfg.Sinks {
		comp := "sink " + sk.Name
		if sk.Disabled {
			fs = append(fs, Finding{Component: comp, Check: "disabled", Severity: SeverityOK, Detail: "not checked"})
			continue
		}
		fs = append(fs, diagnoseValues(ctx, comp, "sinks."+sk.Name+".config", sk.Config.Values)...)
		if s, err := sk.NewSink(reg); err == nil {
			if d, ok := s.(Diagnoser); ok {
				fs = append(fs, d.Diagnose(ctx, env(sk.Name))...)
			}
		}
	}
	return fs
}

// checkWritableDir checks that dir exists (or can be created) and takes
// a file.
func checkWritableDir(comp, key, dir string) Finding {
	f := Finding{Component: comp, Check: "directory " + dir + " writable"}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Severity, f.Detail, f.Fix = SeverityError, err.Error(), fmt.Sprintf("create %s with write permission for the sidecar's user, or point %s elsewhere", dir, key)
		return f
	}
	tmp, err := os.CreateTemp(dir, ".tributary-doctor-*")
	if err != nil {
		f.Severity, f.Detail, f.Fix = SeverityError, err.Error(), fmt.Sprintf("give the sidecar's user write permission on %s (chown or chmod), or point %s elsewhere", dir, key)
		return f
	}
	tmp.Close()
	os.Remove(tmp.Name())
	f.Severity = SeverityOK
	return f
}

// checkListen checks that addr can be listened on now. A port in use is a
// warning: it may be this configuration's own sidecar, running.
func checkListen(key, addr string) Finding {
	f := Finding{Component: strings.TrimSuffix(key, ".address"), Check: "listen on " + addr, Severity: SeverityOK}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		f.Severity, f.Detail = SeverityWarning, err.Error()
		f.Fix = "if no sidecar of this configuration is running, another process holds the port: stop it or change " + key
		return f
	}
	ln.Close()
	return f
}

// diagnoseStream opens the stream and pings it; for Kafka it also checks
// the topics' configuration.
func diagnoseStream(ctx context.Context, reg *core.Registry, cfg *config.Config) []Finding {
	comp := "stream"
	st, err := cfg.Stream.NewStream(reg)
	if err != nil {
		return []Finding{{Component: comp, Check: "configuration", Severity: SeverityError, Detail: err.Error(), Fix: "correct the stream section"}}
	}
	var fs []Finding
	env := core.Env{Name: "doctor", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StateDir: cfg.StateDir}
	octx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err = st.Open(octx, env)
	cancel()
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = st.Ping(pctx)
		cancel()
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = st.Close(cctx)
	cancel()
	f := Finding{Component: comp, Check: cfg.Stream.Type + " stream reachable", Severity: SeverityOK}
	if err != nil {
		f.Severity, f.Detail = SeverityError, err.Error()
		f.Fix = "start the stream's service or correct stream.config (brokers, credentials, TLS); a sidecar started now would retry until it answers"
	}
	fs = append(fs, f)
	if d, ok := st.(Diagnoser); ok {
		fs = append(fs, d.Diagnose(ctx, env)...)
	}
	if cfg.Stream.Type == "kafka" && err == nil {
		fs = append(fs, diagnoseKafkaTopics(cfg)...)
	}
	return fs
}

// diagnoseKafkaTopics checks the replication of the event and dead-letter
// topics and the compaction of the checkpoint topic, on a plaintext
// connection (with SASL or TLS configured it says it did not check).
func diagnoseKafkaTopics(cfg *config.Config) []Finding {
	comp := "stream"
	v := cfg.Stream.Config.Values
	if v["sasl"] != nil || v["tls"] != nil {
		return []Finding{{Component: comp, Check: "topic configuration", Severity: SeverityWarning,
			Detail: "not checked: doctor reads topic configuration over plaintext only", Fix: "check min.insync.replicas and the checkpoint topic's cleanup.policy=compact with kafka-configs.sh"}}
	}
	var brokers []string
	if bs, ok := v["brokers"].([]any); ok {
		for _, b := range bs {
			if s, ok := b.(string); ok {
				brokers = append(brokers, s)
			}
		}
	}
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Net.DialTimeout = 10 * time.Second
	admin, err := sarama.NewClusterAdmin(brokers, sc)
	if err != nil {
		return []Finding{{Component: comp, Check: "topic configuration", Severity: SeverityError, Detail: err.Error(), Fix: "check stream.config.brokers"}}
	}
	defer admin.Close()
	topics := []string{cfg.Stream.DeadLetterTopic}
	for _, t := range knownTypes(cfg) {
		topics = append(topics, cfg.Stream.Topics.Topic(t))
	}
	slices.Sort(topics)
	topics = slices.Compact(topics)
	cpTopic, _ := v["checkpoint_topic"].(string)
	if cpTopic == "" {
		cpTopic = "tributary.checkpoints"
	}
	meta, err := admin.DescribeTopics(append(slices.Clone(topics), cpTopic))
	if err != nil {
		return []Finding{{Component: comp, Check: "topic configuration", Severity: SeverityError, Detail: err.Error(), Fix: "give the stream's user Describe on the topics"}}
	}
	var fs []Finding
	for _, tm := range meta {
		f := Finding{Component: comp, Check: "topic " + tm.Name, Severity: SeverityOK}
		if tm.Err == sarama.ErrUnknownTopicOrPartition {
			f.Detail = "missing; the sidecar creates it (create_topics) with topic_replication"
			if b, ok := v["create_topics"].(bool); ok && !b {
				f.Severity, f.Fix = SeverityError, "create the topic, or set stream.config.create_topics: true"
			}
			fs = append(fs, f)
			continue
		}
		if tm.Err != sarama.ErrNoError {
			f.Severity, f.Detail, f.Fix = SeverityError, tm.Err.Error(), "give the stream's user Describe and Write on the topic"
			fs = append(fs, f)
			continue
		}
		rf := 0
		if len(tm.Partitions) > 0 {
			rf = len(tm.Partitions[0].Replicas)
		}
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: tm.Name})
		if err != nil {
			f.Severity, f.Detail, f.Fix = SeverityError, err.Error(), "give the stream's user DescribeConfigs on the topic"
			fs = append(fs, f)
			continue
		}
		conf := map[string]string{}
		for _, e := range entries {
			conf[e.Name] = e.Value
		}
		minISR, _ := strconv.Atoi(conf["min.insync.replicas"])
		f.Detail = fmt.Sprintf("replication %d, min.insync.replicas %d, cleanup.policy %s", rf, minISR, conf["cleanup.policy"])
		switch {
		case tm.Name == cpTopic && !strings.Contains(conf["cleanup.policy"], "compact"):
			f.Severity, f.Fix = SeverityError, fmt.Sprintf("the checkpoint topic must be compacted, or old checkpoints expire: kafka-configs.sh --alter --entity-type topics --entity-name %s --add-config cleanup.policy=compact", tm.Name)
		case rf >= 3 && minISR < 2:
			f.Severity, f.Fix = SeverityError, fmt.Sprintf("an acknowledged event may sit on one broker only: kafka-configs.sh --alter --entity-type topics --entity-name %s --add-config min.insync.replicas=2", tm.Name)
		case rf < 3:
			f.Severity, f.Fix = SeverityWarning, "fine for development; in production give the topic a replication factor of 3 and min.insync.replicas=2"
		}
		fs = append(fs, f)
	}
	return fs
}

// diagnosePostgres checks what logical replication needs.
func diagnosePostgres(ctx context.Context, comp, name string, v map[string]any) []Finding {
	dsn, _ := v["url"].(string)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return []Finding{{Component: comp, Check: "PostgreSQL reachable", Severity: SeverityError, Detail: err.Error(), Fix: "check url (host, port, user, password, database) and pg_hba.conf"}}
	}
	defer conn.Close(context.Background())
	fs := []Finding{{Component: comp, Check: "PostgreSQL reachable", Severity: SeverityOK}}
	var walLevel string
	f := Finding{Component: comp, Check: "wal_level is logical", Severity: SeverityOK}
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		f.Severity, f.Detail = SeverityError, err.Error()
	} else if walLevel != "logical" {
		f.Severity, f.Detail, f.Fix = SeverityError, "wal_level is "+walLevel, "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL"
	}
	fs = append(fs, f)
	var repl, super bool
	f = Finding{Component: comp, Check: "role may replicate", Severity: SeverityOK}
	if err := conn.QueryRow(ctx, "SELECT rolreplication, rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&repl, &super); err != nil {
		f.Severity, f.Detail = SeverityError, err.Error()
	} else if !repl && !super {
		f.Severity, f.Detail, f.Fix = SeverityError, "the role has neither REPLICATION nor superuser", "ALTER ROLE <the url's user> WITH REPLICATION"
	}
	fs = append(fs, f)
	slot, _ := v["slot"].(string)
	if slot == "" {
		slot = "tributary_" + name
	}
	var active bool
	var pid *int32
	f = Finding{Component: comp, Check: "slot " + slot, Severity: SeverityOK}
	err = conn.QueryRow(ctx, "SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&active, &pid)
	switch {
	case err == pgx.ErrNoRows:
		f.Detail = "missing; the connector creates it at start (setup: auto)"
		if s, _ := v["setup"].(string); s == "verify" {
			f.Severity, f.Detail = SeverityError, "missing, and setup is verify"
			f.Fix = fmt.Sprintf("SELECT pg_create_logical_replication_slot('%s', 'pgoutput'), or set setup: auto", slot)
		}
	case err != nil:
		f.Severity, f.Detail = SeverityError, err.Error()
	case active:
		f.Severity, f.Detail = SeverityError, fmt.Sprintf("active, held by backend pid %d", derefPID(pid))
		f.Fix = "stop the other consumer of the slot (another sidecar with this connector?), or give this connector its own slot"
	}
	fs = append(fs, f)
	pub, _ := v["publication"].(string)
	if pub == "" {
		pub = "tributary_" + name
	}
	f = Finding{Component: comp, Check: "publication " + pub, Severity: SeverityOK}
	var all bool
	err = conn.QueryRow(ctx, "SELECT puballtables FROM pg_publication WHERE pubname = $1", pub).Scan(&all)
	switch {
	case err == pgx.ErrNoRows:
		f.Detail = "missing; the connector creates it at start (setup: auto)"
		if s, _ := v["setup"].(string); s == "verify" {
			f.Severity, f.Detail = SeverityError, "missing, and setup is verify"
			f.Fix = "CREATE PUBLICATION " + pub + " FOR TABLE <the tables>, or set setup: auto"
		}
	case err != nil:
		f.Severity, f.Detail = SeverityError, err.Error()
	case !all:
		rows, err := conn.Query(ctx, "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1", pub)
		if err != nil {
			f.Severity, f.Detail = SeverityError, err.Error()
			break
		}
		have, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			f.Severity, f.Detail = SeverityError, err.Error()
			break
		}
		var missing []string
		for _, t := range stringsOf(v["tables"]) {
			if !strings.Contains(t, ".") {
				t = "public." + t
			}
			if !slices.Contains(have, t) {
				missing = append(missing, t)
			}
		}
		if len(missing) > 0 {
			f.Severity, f.Detail = SeverityError, "lacks "+strings.Join(missing, ", ")
			f.Fix = "ALTER PUBLICATION " + pub + " ADD TABLE " + strings.Join(missing, ", ")
		}
	}
	return append(fs, f)
}

func derefPID(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func stringsOf(v any) []string {
	var out []string
	if vs, ok := v.([]any); ok {
		for _, x := range vs {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// diagnoseMySQL checks what binlog replication needs.
func diagnoseMySQL(ctx context.Context, comp string, v map[string]any) []Finding {
	dsn, _ := v["dsn"].(string)
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return []Finding{{Component: comp, Check: "dsn", Severity: SeverityError, Detail: err.Error(), Fix: "write dsn as user:password@tcp(host:port)/database"}}
	}
	mc.Timeout = 10 * time.Second
	db, err := sql.Open("mysql", mc.FormatDSN())
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		return []Finding{{Component: comp, Check: "MySQL reachable", Severity: SeverityError, Detail: err.Error(), Fix: "check dsn (host, port, user, password) and the server's bind-address"}}
	}
	defer db.Close()
	fs := []Finding{{Component: comp, Check: "MySQL reachable", Severity: SeverityOK}}
	vars := map[string]string{}
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image', 'binlog_expire_logs_seconds', 'expire_logs_days')")
	if err == nil {
		for rows.Next() {
			var k, val string
			if rows.Scan(&k, &val) == nil {
				vars[k] = val
			}
		}
		rows.Close()
	}
	want := []struct{ name, value, fix string }{
		{"log_bin", "ON", "start the server with log_bin (log-bin=mysql-bin in my.cnf) and restart it"},
		{"binlog_format", "ROW", "SET GLOBAL binlog_format = 'ROW' (and binlog_format=ROW in my.cnf)"},
		{"binlog_row_image", "FULL", "SET GLOBAL binlog_row_image = 'FULL' (and binlog_row_image=FULL in my.cnf)"},
	}
	for _, w := range want {
		f := Finding{Component: comp, Check: w.name + " is " + w.value, Severity: SeverityOK}
		if got := vars[w.name]; !strings.EqualFold(got, w.value) {
			f.Severity, f.Detail, f.Fix = SeverityError, fmt.Sprintf("%s is %q", w.name, got), w.fix
		}
		fs = append(fs, f)
	}
	f := Finding{Component: comp, Check: "binlog retention", Severity: SeverityOK}
	secs, _ := strconv.ParseFloat(vars["binlog_expire_logs_seconds"], 64)
	if days, _ := strconv.ParseFloat(vars["expire_logs_days"], 64); secs == 0 && days > 0 {
		secs = days * 86400
	}
	switch {
	case secs == 0:
		f.Detail = "binlogs are kept until purged by hand"
	case secs < 86400:
		f.Severity, f.Detail = SeverityWarning, fmt.Sprintf("binlogs are kept %s", time.Duration(secs)*time.Second)
		f.Fix = "keep binlogs longer than the longest outage the sidecar may have (SET GLOBAL binlog_expire_logs_seconds = 604800), or a stopped connector has to snapshot again"
	default:
		f.Detail = fmt.Sprintf("binlogs are kept %s", time.Duration(secs)*time.Second)
	}
	fs = append(fs, f)
	f = Finding{Component: comp, Check: "replication grants", Severity: SeverityOK}
	var grants []string
	if rows, err := db.QueryContext(ctx, "SHOW GRANTS"); err == nil {
		for rows.Next() {
			var g string
			if rows.Scan(&g) == nil {
				grants = append(grants, strings.ToUpper(g))
			}
		}
		rows.Close()
	}
	all := strings.Join(grants, "\n")
	if !strings.Contains(all, "ALL PRIVILEGES ON *.*") && (!strings.Contains(all, "REPLICATION SLAVE") && !strings.Contains(all, "REPLICATION REPLICA") || !strings.Contains(all, "REPLICATION CLIENT") && !strings.Contains(all, "BINLOG MONITOR")) {
		f.Severity, f.Detail = SeverityError, "the user lacks REPLICATION SLAVE or REPLICATION CLIENT"
		f.Fix = "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO <the dsn's user>"
	}
	return append(fs, f)
}

// diagnoseValues checks the values of a component's configuration that
// name things doctor can reach without knowing the component: http(s)
// URLs under a key url, base_url or endpoint (reachable) and directories
// under a key dir, directory or output_dir (present, writable).
func diagnoseValues(ctx context.Context, comp, at string, v map[string]any) []Finding {
	var fs []Finding
	for _, key := range []string{"url", "base_url", "endpoint"} {
		s, _ := v[key].(string)
		u, err := url.Parse(s)
		if s == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			continue
		}
		fs = append(fs, checkURL(ctx, comp, at+"."+key, http.MethodHead, u, nil))
	}
	for _, key := range []string{"dir", "directory", "output_dir"} {
		if s, _ := v[key].(string); s != "" {
			fs = append(fs, checkWritableDir(comp, at+"."+key, s))
		}
	}
	return fs
}

// diagnoseREST calls a rest_poll connector's URL (its templates cut off)
// with a GET and the connector's credentials (basic, bearer, api_key; an
// oauth2 token is not fetched): no answer is an error, and so are 401 and
// 403, the credentials refused.
func diagnoseREST(ctx context.Context, comp, at string, v map[string]any) Finding {
	raw, _ := v["url"].(string)
	if i := strings.Index(raw, "{{"); i >= 0 {
		raw = raw[:i]
		if j := strings.LastIndexAny(raw, "?&"); j >= 0 {
			raw = raw[:j]
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return Finding{Component: comp, Check: "endpoint reachable", Severity: SeverityWarning, Detail: "url is a template doctor cannot fill in; not checked"}
	}
	auth, _ := v["auth"].(map[string]any)
	str := func(k string) string { s, _ := auth[k].(string); return s }
	kind := str("type")
	set := func(req *http.Request) {
		switch kind {
		case "basic":
			req.SetBasicAuth(str("username"), str("password"))
		case "bearer":
			req.Header.Set("Authorization", "Bearer "+str("token"))
		case "api_key":
			if h := str("header"); h != "" {
				req.Header.Set(h, str("key"))
			} else if q := str("query_param"); q != "" {
				qs := req.URL.Query()
				qs.Set(q, str("key"))
				req.URL.RawQuery = qs.Encode()
			}
		}
	}
	f := checkURL(ctx, comp, at+".url", http.MethodGet, u, set)
	if f.Severity == SeverityOK && kind == "oauth2" {
		f.Detail += " (without an oauth2 token: credentials not checked)"
	}
	return f
}

// checkURL sends method to u, with auth's credentials when auth is not
// nil: no answer is an error, and so are 401 and 403 when credentials
// were sent; a server error is a warning; any other answer shows the
// endpoint is there.
func checkURL(ctx context.Context, comp, key, method string, u *url.URL, auth func(*http.Request)) Finding {
	shown := *u
	shown.User = nil
	shown.RawQuery = ""
	f := Finding{Component: comp, Check: "endpoint " + shown.String() + " reachable", Severity: SeverityOK}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, u.String(), nil)
	if err != nil {
		f.Severity, f.Detail, f.Fix = SeverityError, err.Error(), "correct "+key
		return f
	}
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.Severity, f.Detail, f.Fix = SeverityError, err.Error(), "check "+key+" (host, port, scheme), DNS and firewalls between the sidecar and the endpoint"
		return f
	}
	resp.Body.Close()
	f.Detail = resp.Status + " to " + method
	switch {
	case auth != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
		f.Severity, f.Fix = SeverityError, "the endpoint refuses the configured credentials: check "+strings.TrimSuffix(key, ".url")+".auth (the token, user and password, or key, and their rights)"
	case resp.StatusCode >= 500:
		f.Severity, f.Fix = SeverityWarning, "the endpoint answers with a server error; check its health"
	}
	return f
}
