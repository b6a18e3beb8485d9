package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
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

// Defaults of the configuration fields. No linger: as fast a throughput as
// a 5ms linger in BenchmarkPublish1KB, with a tenth of the latency of a
// single publish; no compression: the least CPU on both sides of a fast
// link (see README.md).
const (
	DefaultClientID         = "tributary"
	DefaultKafkaVersion     = "3.6.0"
	DefaultTopicPartitions  = 3
	DefaultTopicReplication = 1
	DefaultCheckpointTopic  = "tributary.checkpoints"
	DefaultBatchMaxMessages = 0
	DefaultBatchMaxBytes    = 512 << 10
	DefaultLinger           = time.Duration(0)
	DefaultDialTimeout      = 10 * time.Second
	DefaultCompression      = CompressionNone
)

// fields declares the Kafka stream's configuration.
func fields() []core.Field {
	return []core.Field{
		{Name: "brokers", Type: core.TypeStrings, Required: true, Doc: "Bootstrap brokers as host:port.", Example: "[kafka-1:9092, kafka-2:9092]"},
		{Name: "client_id", Type: core.TypeString, Default: DefaultClientID, Doc: "Client id the brokers log and quota by."},
		{Name: "kafka_version", Type: core.TypeString, Default: DefaultKafkaVersion, Doc: "Oldest broker version in the cluster; it selects the protocol versions the client speaks.", Example: "3.6.0"},
		{Name: "create_topics", Type: core.TypeBool, Default: true, Doc: "Create missing topics (events and checkpoints) with topic_partitions and topic_replication. When false, a missing topic is an error."},
		{Name: "topic_partitions", Type: core.TypeInt, Default: DefaultTopicPartitions, Doc: "Partitions of topics this stream creates."},
		{Name: "topic_replication", Type: core.TypeInt, Default: DefaultTopicReplication, Doc: "Replication factor of topics this stream creates; 3 in production."},
		{Name: "checkpoint_topic", Type: core.TypeString, Default: DefaultCheckpointTopic, Doc: "Compacted topic holding source checkpoints, keyed by connector name."},
		{Name: "batch_max_messages", Type: core.TypeInt, Default: DefaultBatchMaxMessages, Doc: "With a linger, send a batch once this many messages are buffered; 0 leaves it to batch_max_bytes and linger."},
		{Name: "batch_max_bytes", Type: core.TypeInt, Default: DefaultBatchMaxBytes, Doc: "With a linger, send a batch once this many bytes are buffered. A partition's batch holds at most 1 MB, or this many bytes when higher."},
		{Name: "linger", Type: core.TypeDuration, Default: DefaultLinger.String(), Doc: "Longest time a message waits to be batched with others before it is sent. 0 sends at once; batches then form from what arrives while the previous request is in flight, which keeps up with a 5ms linger at a tenth of a lone publish's latency."},
		{Name: "compression", Type: core.TypeString, Default: string(DefaultCompression), Enum: []string{"none", "snappy", "lz4", "zstd", "gzip"}, Doc: "Codec of produced record batches. none costs no CPU and is fastest on a local or fast network; lz4 (about 4 µs of client CPU per 1 KB event, plus the broker's to check it) pays off on a slow or metered link; zstd compresses most and costs most."},
		{Name: "dial_timeout", Type: core.TypeDuration, Default: DefaultDialTimeout.String(), Doc: "How long connecting to a broker may take."},
		{Name: "tls", Type: core.TypeObject, Doc: "TLS to the brokers; absent means plaintext.", Fields: []core.Field{
			{Name: "enabled", Type: core.TypeBool, Default: false, Doc: "Use TLS."},
			{Name: "ca_file", Type: core.TypeString, Doc: "PEM file of the CAs that sign the brokers' certificates; empty means the system pool."},
			{Name: "cert_file", Type: core.TypeString, Doc: "PEM client certificate, for mutual TLS."},
			{Name: "key_file", Type: core.TypeString, Secret: true, Doc: "PEM private key of cert_file."},
			{Name: "server_name", Type: core.TypeString, Doc: "Name expected in the brokers' certificates, when it differs from the host."},
			{Name: "insecure_skip_verify", Type: core.TypeBool, Default: false, Doc: "Accept any broker certificate. For tests only."},
		}},
		{Name: "sasl", Type: core.TypeObject, Doc: "SASL authentication; absent means none.", Fields: []core.Field{
			{Name: "mechanism", Type: core.TypeString, Default: "PLAIN", Enum: []string{"PLAIN"}, Doc: "SASL mechanism."},
			{Name: "username", Type: core.TypeString, Doc: "User name."},
			{Name: "password", Type: core.TypeString, Secret: true, Doc: "Password; reference a secret such as ${file:/run/secrets/kafka}."},
		}},
	}
}

// Config is the Kafka stream's typed configuration.
type Config struct {
	Brokers          []string
	ClientID         string
	KafkaVersion     sarama.KafkaVersion
	CreateTopics     bool
	TopicPartitions  int
	TopicReplication int
	CheckpointTopic  string
	BatchMaxMessages int
	BatchMaxBytes    int
	Linger           time.Duration
	Compression      Compression
	DialTimeout      time.Duration
	TLS              TLSConfig
	SASL             SASLConfig
}

// TLSConfig configures TLS to the brokers.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASLConfig configures SASL authentication.
type SASLConfig struct {
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// rawConfig is the configuration as written in YAML, before parsing.
type rawConfig struct {
	Brokers          []string    `yaml:"brokers"`
	ClientID         string      `yaml:"client_id"`
	KafkaVersion     string      `yaml:"kafka_version"`
	CreateTopics     bool        `yaml:"create_topics"`
	TopicPartitions  int         `yaml:"topic_partitions"`
	TopicReplication int         `yaml:"topic_replication"`
	CheckpointTopic  string      `yaml:"checkpoint_topic"`
	BatchMaxMessages int         `yaml:"batch_max_messages"`
	BatchMaxBytes    int         `yaml:"batch_max_bytes"`
	Linger           string      `yaml:"linger"`
	Compression      string      `yaml:"compression"`
	DialTimeout      string      `yaml:"dial_timeout"`
	TLS              *TLSConfig  `yaml:"tls"`
	SASL             *SASLConfig `yaml:"sasl"`
}

// ParseConfig decodes and validates cfg, applying defaults for absent
// fields. It does no I/O. Every problem is reported at once, each as a
// *core.FieldError naming the field.
func ParseConfig(cfg core.Config) (Config, error) {
	raw := rawConfig{
		ClientID:         DefaultClientID,
		KafkaVersion:     DefaultKafkaVersion,
		CreateTopics:     true,
		TopicPartitions:  DefaultTopicPartitions,
		TopicReplication: DefaultTopicReplication,
		CheckpointTopic:  DefaultCheckpointTopic,
		BatchMaxMessages: DefaultBatchMaxMessages,
		BatchMaxBytes:    DefaultBatchMaxBytes,
		Linger:           DefaultLinger.String(),
		Compression:      string(DefaultCompression),
		DialTimeout:      DefaultDialTimeout.String(),
	}
	if err := cfg.Decode(&raw); err != nil {
		return Config{}, err
	}
	var errs []error
	c := Config{
		ClientID:         strings.TrimSpace(raw.ClientID),
		CreateTopics:     raw.CreateTopics,
		TopicPartitions:  raw.TopicPartitions,
		TopicReplication: raw.TopicReplication,
		CheckpointTopic:  strings.TrimSpace(raw.CheckpointTopic),
		BatchMaxMessages: raw.BatchMaxMessages,
		BatchMaxBytes:    raw.BatchMaxBytes,
		Compression:      Compression(strings.ToLower(strings.TrimSpace(raw.Compression))),
	}
	if len(raw.Brokers) == 0 {
		errs = append(errs, core.FieldErrorf("brokers", "no broker given; list at least one bootstrap broker as host:port, such as [127.0.0.1:9092]"))
	}
	for i, b := range raw.Brokers {
		b = strings.TrimSpace(b)
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			errs = append(errs, core.FieldErrorf(fmt.Sprintf("brokers[%d]", i), "%q is not host:port; write it such as kafka-1:9092", b))
			continue
		}
		c.Brokers = append(c.Brokers, b)
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	v := strings.TrimSpace(raw.KafkaVersion)
	if v == "" {
		v = DefaultKafkaVersion
	}
	kv, err := sarama.ParseKafkaVersion(v)
	if err != nil {
		errs = append(errs, core.FieldErrorf("kafka_version", "%q is not a Kafka version; write one such as %s", raw.KafkaVersion, DefaultKafkaVersion))
	} else if !kv.IsAtLeast(sarama.V2_1_0_0) {
		errs = append(errs, core.FieldErrorf("kafka_version", "%s is too old: idempotent, ordered producing needs brokers at 2.1.0 or newer", v))
	}
	c.KafkaVersion = kv
	if c.TopicPartitions < 1 {
		errs = append(errs, core.FieldErrorf("topic_partitions", "%d is below 1; a topic needs at least one partition", c.TopicPartitions))
	}
	if c.TopicReplication < 1 || c.TopicReplication > 32767 {
		errs = append(errs, core.FieldErrorf("topic_replication", "%d is out of range; use 1 to 32767 (3 in production)", c.TopicReplication))
	}
	if c.CheckpointTopic == "" {
		c.CheckpointTopic = DefaultCheckpointTopic
	} else if err := checkTopicName(c.CheckpointTopic); err != nil {
		errs = append(errs, &core.FieldError{Path: "checkpoint_topic", Err: err})
	}
	if c.BatchMaxMessages < 0 {
		errs = append(errs, core.FieldErrorf("batch_max_messages", "%d is negative; use 0 for no count limit", c.BatchMaxMessages))
	}
	if c.BatchMaxBytes < 0 || c.BatchMaxBytes > 100<<20 {
		errs = append(errs, core.FieldErrorf("batch_max_bytes", "%d is out of range; use 0 to 104857600 (the broker caps a batch at its message.max.bytes)", c.BatchMaxBytes))
	}
	if c.Linger, err = parseDuration(raw.Linger, DefaultLinger); err != nil {
		errs = append(errs, &core.FieldError{Path: "linger", Err: err})
	}
	if c.DialTimeout, err = parseDuration(raw.DialTimeout, DefaultDialTimeout); err != nil {
		errs = append(errs, &core.FieldError{Path: "dial_timeout", Err: err})
	} else if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	switch c.Compression {
	case CompressionNone, CompressionSnappy, CompressionLZ4, CompressionZstd, CompressionGzip:
	case "":
		c.Compression = DefaultCompression
	default:
		errs = append(errs, core.FieldErrorf("compression", "unknown codec %q; use none, snappy, lz4, zstd or gzip", raw.Compression))
	}
	if raw.TLS != nil {
		c.TLS = *raw.TLS
		if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
			errs = append(errs, core.FieldErrorf("tls.key_file", "cert_file and key_file go together; set both for mutual TLS, or neither"))
		}
	}
	if raw.SASL != nil {
		c.SASL = *raw.SASL
		c.SASL.Mechanism = strings.ToUpper(strings.TrimSpace(c.SASL.Mechanism))
		if c.SASL.Mechanism == "" {
			c.SASL.Mechanism = sarama.SASLTypePlaintext
		}
		if c.SASL.Mechanism != sarama.SASLTypePlaintext {
			errs = append(errs, core.FieldErrorf("sasl.mechanism", "unsupported mechanism %q; use PLAIN (over TLS)", raw.SASL.Mechanism))
		}
		if c.SASL.Username == "" {
			errs = append(errs, core.FieldErrorf("sasl.username", "empty; set the SASL user name or remove the sasl section"))
		}
	}
	return c, errors.Join(errs...)
}

func parseDuration(s string, def time.Duration) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return def, nil
	}
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write one such as 5ms or 10s", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative; use a positive duration", s)
	}
	return d, nil
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
// per partition) and one request in flight per broker. The stream's own
// producer (producer.go) takes its settings from the Producer section.
func (c Config) saramaConfig() (*sarama.Config, error) {
	sc := sarama.NewConfig()
	sc.ClientID = c.ClientID
	sc.Version = c.KafkaVersion
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
	switch c.Compression {
	case CompressionSnappy:
		sc.Producer.Compression = sarama.CompressionSnappy
	case CompressionLZ4:
		sc.Producer.Compression = sarama.CompressionLZ4
	case CompressionZstd:
		sc.Producer.Compression = sarama.CompressionZSTD
	case CompressionGzip:
		sc.Producer.Compression = sarama.CompressionGZIP
	default:
		sc.Producer.Compression = sarama.CompressionNone
	}

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
	if c.SASL.Username != "" {
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Mechanism = sarama.SASLMechanism(c.SASL.Mechanism)
		sc.Net.SASL.User = c.SASL.Username
		sc.Net.SASL.Password = c.SASL.Password
		sc.Net.SASL.Handshake = true
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
