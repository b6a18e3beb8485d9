package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/tributary/tributary/core"
)

// Compression is the codec of produced record batches.
type Compression string

// The compression codecs.
const (
	CompressionNone   Compression = "none"
	CompressionSnappy Compression = "snappy"
	CompressionLZ4    Compression = "lz4"
	CompressionZstd   Compression = "zstd"
	CompressionGzip   Compression = "gzip"
)

// codecs maps each compression codec to sarama's.
var codecs = map[Compression]sarama.CompressionCodec{
	CompressionNone:   sarama.CompressionNone,
	CompressionSnappy: sarama.CompressionSnappy,
	CompressionLZ4:    sarama.CompressionLZ4,
	CompressionZstd:   sarama.CompressionZSTD,
	CompressionGzip:   sarama.CompressionGZIP,
}

// Config is the Kafka stream's typed configuration. Each key is declared
// once, by the tags of its field (see core.FieldsOf): they give the
// validation, `tributary connectors`, the config schema and the defaults
// that ParseConfig decodes with. The defaults of linger and compression
// (none of either) are the fastest on a fast link; README.md says when to
// change them.
type Config struct {
	Brokers                     []string      `yaml:"brokers" required:"true" example:"[kafka-1:9092, kafka-2:9092]" doc:"Bootstrap brokers as host:port."`
	ClientID                    string        `yaml:"client_id" default:"tributary" doc:"Client id the brokers log and quota by."`
	KafkaVersion                string        `yaml:"kafka_version" default:"3.6.0" example:"3.6.0" doc:"Oldest broker version in the cluster; it selects the protocol versions the client speaks."`
	CreateTopics                bool          `yaml:"create_topics" default:"true" doc:"Create missing topics (events and checkpoints) with topic_partitions and topic_replication. When false, a missing topic is an error."`
	TopicPartitions             int           `yaml:"topic_partitions" default:"3" doc:"Partitions of topics this stream creates."`
	TopicReplication            int           `yaml:"topic_replication" default:"1" doc:"Replication factor of topics this stream creates; 3 in production."`
	MinInsyncReplicas           int           `yaml:"topic_min_insync_replicas" default:"0" doc:"min.insync.replicas of topics this stream creates; 0 means topic_replication - 1, at least 1 (2 with the production replication of 3), so that an acknowledged event is on two brokers."`
	CheckpointTopic             string        `yaml:"checkpoint_topic" default:"tributary.checkpoints" doc:"Compacted topic holding source checkpoints, keyed by connector name."`
	CheckpointPartitions        int           `yaml:"checkpoint_partitions" default:"1" doc:"Partitions of the checkpoint topic when this stream creates it."`
	CheckpointReplication       int           `yaml:"checkpoint_replication" default:"0" doc:"Replication factor of the checkpoint topic when this stream creates it; 0 means topic_replication."`
	CheckpointMinInsyncReplicas int           `yaml:"checkpoint_min_insync_replicas" default:"0" doc:"min.insync.replicas of the checkpoint topic when this stream creates it; 0 means its replication factor - 1, at least 1."`
	BatchMaxMessages            int           `yaml:"batch_max_messages" default:"0" doc:"With a linger, send a batch once this many messages are buffered; 0 leaves it to batch_max_bytes and linger."`
	BatchMaxBytes               int           `yaml:"batch_max_bytes" default:"524288" doc:"With a linger, send a batch once this many bytes are buffered. A partition's batch holds at most 1 MB, or this many bytes when higher."`
	Linger                      time.Duration `yaml:"linger" default:"0s" doc:"Longest time a message waits to be batched with others before it is sent; 0 sends at once."`
	Compression                 Compression   `yaml:"compression" default:"none" enum:"none,snappy,lz4,zstd,gzip" doc:"Codec of produced record batches."`
	DialTimeout                 time.Duration `yaml:"dial_timeout" default:"10s" doc:"How long connecting to a broker may take."`
	TLS                         TLSConfig     `yaml:"tls" doc:"TLS to the brokers; absent means plaintext."`
	SASL                        *SASLConfig   `yaml:"sasl" doc:"SASL authentication; absent means none."`

	// version is KafkaVersion parsed, by Validate.
	version sarama.KafkaVersion
}

// TLSConfig configures TLS to the brokers.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled" default:"false" doc:"Use TLS."`
	CAFile             string `yaml:"ca_file" doc:"PEM file of the CAs that sign the brokers' certificates; empty means the system pool."`
	CertFile           string `yaml:"cert_file" doc:"PEM client certificate, for mutual TLS."`
	KeyFile            string `yaml:"key_file" secret:"true" doc:"PEM private key of cert_file."`
	ServerName         string `yaml:"server_name" doc:"Name expected in the brokers' certificates, when it differs from the host."`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" default:"false" doc:"Accept any broker certificate. For tests only."`
}

// SASLConfig configures SASL authentication: a user name and password for
// PLAIN and SCRAM, a token provider for OAUTHBEARER (exactly one of token,
// token_file and token_url).
type SASLConfig struct {
	Mechanism    string            `yaml:"mechanism" default:"PLAIN" enum:"PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER" doc:"SASL mechanism; PLAIN sends the password as it is, so use it over TLS only."`
	Username     string            `yaml:"username" doc:"User name, for PLAIN and SCRAM."`
	Password     string            `yaml:"password" secret:"true" doc:"Password, for PLAIN and SCRAM; reference a secret such as ${file:/run/secrets/kafka}."`
	Token        string            `yaml:"token" secret:"true" doc:"OAUTHBEARER: a fixed access token."`
	TokenFile    string            `yaml:"token_file" doc:"OAUTHBEARER: file holding the access token, read again at each connection (a sidecar or agent refreshes it)."`
	TokenURL     string            `yaml:"token_url" doc:"OAUTHBEARER: OAuth 2 token endpoint, asked with the client credentials grant; the token is kept until shortly before it expires."`
	ClientID     string            `yaml:"client_id" doc:"OAUTHBEARER with token_url: the client id."`
	ClientSecret string            `yaml:"client_secret" secret:"true" doc:"OAUTHBEARER with token_url: the client secret."`
	Scopes       []string          `yaml:"scopes" doc:"OAUTHBEARER with token_url: scopes asked for."`
	Extensions   map[string]string `yaml:"extensions" doc:"OAUTHBEARER: SASL extensions sent with the token (such as logicalCluster and identityPoolId for Confluent Cloud)."`
}

// defaults returns the Config of an empty document: every key at its
// declared default.
func defaults() Config {
	var c Config
	_ = core.NewConfig(Type, nil).Decode(&c)
	return c
}

// ParseConfig decodes cfg into a Config, absent keys taking their declared
// defaults, and validates it. It does no I/O. Every problem is reported at
// once, each as a *core.FieldError naming the field: Validate runs even
// when a key does not decode (that key then holds its zero value).
func ParseConfig(cfg core.Config) (Config, error) {
	var c Config
	err := cfg.Decode(&c)
	return c, errors.Join(err, c.Validate())
}

// Validate checks what the tags cannot say (brokers as host:port, ranges,
// the Kafka version, keys that go together), trims the values and parses
// the Kafka version. It does no I/O and reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	brokers := c.Brokers
	c.Brokers = nil
	if len(brokers) == 0 {
		errs = append(errs, core.FieldErrorf("brokers", "no broker given; list at least one bootstrap broker as host:port, such as [127.0.0.1:9092]"))
	}
	for i, b := range brokers {
		b = strings.TrimSpace(b)
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			errs = append(errs, core.FieldErrorf(fmt.Sprintf("brokers[%d]", i), "%q is not host:port; write it such as kafka-1:9092", b))
			continue
		}
		c.Brokers = append(c.Brokers, b)
	}
	c.ClientID = strings.TrimSpace(c.ClientID)
	errs = append(errs, c.parseVersion())
	if c.TopicPartitions < 1 {
		errs = append(errs, core.FieldErrorf("topic_partitions", "%d is below 1; a topic needs at least one partition", c.TopicPartitions))
	}
	if c.TopicReplication < 1 || c.TopicReplication > 32767 {
		errs = append(errs, core.FieldErrorf("topic_replication", "%d is out of range; use 1 to 32767 (3 in production)", c.TopicReplication))
	}
	if c.MinInsyncReplicas < 0 || c.MinInsyncReplicas > c.TopicReplication && c.TopicReplication >= 1 {
		errs = append(errs, core.FieldErrorf("topic_min_insync_replicas", "%d is out of range; use 1 to topic_replication (%d), or 0 for topic_replication - 1", c.MinInsyncReplicas, c.TopicReplication))
	}
	if c.CheckpointPartitions < 1 {
		errs = append(errs, core.FieldErrorf("checkpoint_partitions", "%d is below 1; the checkpoint topic needs at least one partition", c.CheckpointPartitions))
	}
	if c.CheckpointReplication < 0 || c.CheckpointReplication > 32767 {
		errs = append(errs, core.FieldErrorf("checkpoint_replication", "%d is out of range; use 1 to 32767, or 0 for topic_replication", c.CheckpointReplication))
	}
	if r := c.checkpointReplication(); c.CheckpointMinInsyncReplicas < 0 || c.CheckpointMinInsyncReplicas > r && r >= 1 {
		errs = append(errs, core.FieldErrorf("checkpoint_min_insync_replicas", "%d is out of range; use 1 to the checkpoint topic's replication (%d), or 0 for its replication - 1", c.CheckpointMinInsyncReplicas, r))
	}
	c.CheckpointTopic = strings.TrimSpace(c.CheckpointTopic)
	if err := checkTopicName(c.CheckpointTopic); err != nil {
		errs = append(errs, &core.FieldError{Path: "checkpoint_topic", Err: err})
	}
	if c.BatchMaxMessages < 0 {
		errs = append(errs, core.FieldErrorf("batch_max_messages", "%d is negative; use 0 for no count limit", c.BatchMaxMessages))
	}
	if c.BatchMaxBytes < 0 || c.BatchMaxBytes > 100<<20 {
		errs = append(errs, core.FieldErrorf("batch_max_bytes", "%d is out of range; use 0 to 104857600 (the broker caps a batch at its message.max.bytes)", c.BatchMaxBytes))
	}
	if c.Linger < 0 {
		errs = append(errs, core.FieldErrorf("linger", "%s is negative; use 0 to send at once, or a positive duration such as 5ms", c.Linger))
	}
	switch {
	case c.DialTimeout < 0:
		errs = append(errs, core.FieldErrorf("dial_timeout", "%s is negative; use a positive duration such as 10s", c.DialTimeout))
	case c.DialTimeout == 0:
		// 0 has always meant the default, as if the key were absent.
		c.DialTimeout = defaults().DialTimeout
	}
	compression := c.Compression
	c.Compression = Compression(strings.ToLower(strings.TrimSpace(string(c.Compression))))
	if _, ok := codecs[c.Compression]; !ok {
		errs = append(errs, core.FieldErrorf("compression", "unknown codec %q; use none, snappy, lz4, zstd or gzip", compression))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, core.FieldErrorf("tls.key_file", "cert_file and key_file go together; set both for mutual TLS, or neither"))
	}
	if c.SASL != nil {
		errs = append(errs, c.SASL.validate())
	}
	return errors.Join(errs...)
}

// checkpointReplication is the replication factor of the checkpoint topic.
func (c Config) checkpointReplication() int {
	if c.CheckpointReplication > 0 {
		return c.CheckpointReplication
	}
	return c.TopicReplication
}

// minInsync returns the min.insync.replicas a topic of replication
// factor replication is created with: set, or replication - 1, at least 1.
func minInsync(set, replication int) int {
	if set > 0 {
		return set
	}
	return max(1, replication-1)
}

// parseVersion sets c.version from KafkaVersion.
func (c *Config) parseVersion() error {
	v := strings.TrimSpace(c.KafkaVersion)
	kv, err := sarama.ParseKafkaVersion(v)
	if err != nil {
		return core.FieldErrorf("kafka_version", "%q is not a Kafka version; write one such as 3.6.0", c.KafkaVersion)
	}
	if !kv.IsAtLeast(sarama.V2_1_0_0) {
		return core.FieldErrorf("kafka_version", "%s is too old: idempotent, ordered producing needs brokers at 2.1.0 or newer", v)
	}
	c.KafkaVersion, c.version = v, kv
	return nil
}

func (s *SASLConfig) validate() error {
	var errs []error
	mechanism := s.Mechanism
	s.Mechanism = strings.ToUpper(strings.TrimSpace(s.Mechanism))
	switch s.Mechanism {
	case sarama.SASLTypePlaintext, sarama.SASLTypeSCRAMSHA256, sarama.SASLTypeSCRAMSHA512:
		if s.Username == "" {
			errs = append(errs, core.FieldErrorf("sasl.username", "empty; set the SASL user name or remove the sasl section"))
		}
		for _, f := range []struct{ key, v string }{{"token", s.Token}, {"token_file", s.TokenFile}, {"token_url", s.TokenURL}} {
			if f.v != "" {
				errs = append(errs, core.FieldErrorf("sasl."+f.key, "set for mechanism %s, which takes username and password; use OAUTHBEARER for tokens", s.Mechanism))
			}
		}
	case sarama.SASLTypeOAuth:
		n := 0
		for _, v := range []string{s.Token, s.TokenFile, s.TokenURL} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, core.FieldErrorf("sasl.token", "OAUTHBEARER takes exactly one of token, token_file and token_url (%d set)", n))
		}
		if s.TokenURL != "" {
			if u, err := url.Parse(s.TokenURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				errs = append(errs, core.FieldErrorf("sasl.token_url", "%q is not an http(s) URL; write it such as https://idp.example.com/oauth2/token", s.TokenURL))
			}
			if s.ClientID == "" || s.ClientSecret == "" {
				errs = append(errs, core.FieldErrorf("sasl.client_id", "token_url needs client_id and client_secret (the client credentials grant)"))
			}
		}
		if s.Username != "" || s.Password != "" {
			errs = append(errs, core.FieldErrorf("sasl.username", "set for OAUTHBEARER, which authenticates with a token; remove username and password"))
		}
	default:
		errs = append(errs, core.FieldErrorf("sasl.mechanism", "unsupported mechanism %q; use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER", mechanism))
	}
	return errors.Join(errs...)
}

// checkTopicName applies Kafka's rules for topic names.
func checkTopicName(name string) error {
	if name == "" {
		return errors.New("empty topic name")
	}
	if name == "." || name == ".." {
		return fmt.Errorf("topic name %q is reserved; choose another", name)
	}
	if len(name) > 249 {
		return fmt.Errorf("topic name %q is longer than 249 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic name %q has %q; use only letters, digits, '.', '_' and '-'", name, r)
		}
	}
	return nil
}

// saramaConfig builds the client configuration. Producer durability is set
// here explicitly rather than left to library defaults: acknowledgement by
// all in-sync replicas, idempotence (no duplicates from retries, order kept
// per partition) and one batch per partition in flight. The stream's own
// producer (producer.go) takes its settings from the Producer section, and
// the Net section (TLS, SASL, timeouts) for its broker connections.
func (c Config) saramaConfig() (*sarama.Config, error) {
	sc := sarama.NewConfig()
	sc.ClientID = c.ClientID
	sc.Version = c.version
	sc.ChannelBufferSize = 8192

	sc.Net.DialTimeout = c.DialTimeout
	sc.Net.ReadTimeout = 30 * time.Second
	sc.Net.WriteTimeout = 30 * time.Second
	sc.Net.MaxOpenRequests = 1

	// Topics are created on purpose (see topics.go), never as a side
	// effect of a metadata request.
	sc.Metadata.AllowAutoTopicCreation = false
	sc.Metadata.Retry.Max = 3
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond

	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Producer.Timeout = 10 * time.Second
	sc.Producer.Retry.Max = 1000
	sc.Producer.Retry.BackoffFunc = func(retries, _ int) time.Duration {
		return min(50*time.Millisecond<<min(retries, 6), 2*time.Second)
	}
	sc.Producer.Partitioner = newJavaPartitioner
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Flush.Messages = c.BatchMaxMessages
	sc.Producer.Flush.Bytes = c.BatchMaxBytes
	sc.Producer.Flush.Frequency = c.Linger
	if c.Linger == 0 {
		// No linger: send as soon as possible. Batches still form from
		// what arrives while the previous request is in flight. A byte or
		// count trigger without a linger would hold a quiet stream's
		// messages until the trigger is reached.
		sc.Producer.Flush.Messages = 0
		sc.Producer.Flush.Bytes = 0
	}
	if c.BatchMaxBytes > sc.Producer.MaxMessageBytes {
		sc.Producer.MaxMessageBytes = c.BatchMaxBytes
	}
	sc.Producer.Compression = codecs[c.Compression]

	sc.Consumer.Return.Errors = true
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Offsets.AutoCommit.Interval = time.Second
	sc.Consumer.Group.Heartbeat.Interval = time.Second
	sc.Consumer.Group.Session.Timeout = 10 * time.Second
	sc.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	sc.Consumer.Group.Rebalance.Retry.Max = 10
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}

	sc.Admin.Timeout = 30 * time.Second

	if c.TLS.Enabled {
		tc, err := c.TLS.build()
		if err != nil {
			return nil, err
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	if c.SASL != nil {
		c.SASL.apply(sc)
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("kafka client configuration: %w", err)
	}
	return sc, nil
}

func (t TLSConfig) build() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, &core.FieldError{Path: "tls.ca_file", Err: fmt.Errorf("read CA file: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, core.FieldErrorf("tls.ca_file", "%s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		certPEM, err := os.ReadFile(t.CertFile)
		if err != nil {
			return nil, &core.FieldError{Path: "tls.cert_file", Err: fmt.Errorf("read client certificate: %w", err)}
		}
		keyPEM, err := os.ReadFile(t.KeyFile)
		if err != nil {
			// key_file is declared secret: name the field, not the path.
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, &core.FieldError{Path: "tls.key_file", Err: fmt.Errorf("read client key: %w", err)}
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, &core.FieldError{Path: "tls.cert_file", Err: fmt.Errorf("load client certificate: %w", err)}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
