// Package servicetest finds the real services (Kafka, PostgreSQL, MariaDB)
// that integration tests run against.
//
// Each service is named by an environment variable, which
// `scripts/services env` prints and `make test` sets. When the variable is
// unset the test is skipped with a message naming `make test`, unless
// TRIBUTARY_REQUIRE_SERVICES=1 (set by `make test` and CI), in which case a
// missing service fails the test: services are never optional there.
package servicetest

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// Environment variables naming the services.
const (
	EnvRequire  = "TRIBUTARY_REQUIRE_SERVICES"
	EnvKafka    = "TRIBUTARY_KAFKA_BROKERS" // comma-separated host:port list
	EnvPostgres = "TRIBUTARY_POSTGRES_URL"  // postgres://user:pass@127.0.0.1:port/db
	EnvMySQL    = "TRIBUTARY_MYSQL_DSN"     // user:pass@tcp(127.0.0.1:port)/db
	// EnvKafkaFault is the broker's fault listener as advertised: a client
	// bootstrapping there reaches the broker only through whatever listens
	// on that address (a proxy a fault test can cut).
	EnvKafkaFault = "TRIBUTARY_KAFKA_FAULT_BROKERS"
)

// Required reports whether missing services must fail tests.
func Required() bool { return os.Getenv(EnvRequire) == "1" }

// Kafka returns the brokers of the real Kafka service.
func Kafka(t testing.TB) []string {
	t.Helper()
	v := lookup(t, EnvKafka, "kafka")
	brokers := strings.Split(v, ",")
	reachable(t, "kafka", brokers[0])
	return brokers
}

// KafkaFault returns the advertised address of the Kafka broker's fault
// listener; the test serves it with a proxy it can cut.
func KafkaFault(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvKafkaFault, "kafka")
}

// Postgres returns the connection URL of the real PostgreSQL service.
func Postgres(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvPostgres, "postgres")
}

// MySQL returns the DSN of the real MariaDB service.
func MySQL(t testing.TB) string {
	t.Helper()
	return lookup(t, EnvMySQL, "mariadb")
}

func lookup(t testing.TB, env, service string) string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(env))
	if v != "" {
		return v
	}
	if Required() {
		t.Fatalf("%s is required (%s=1) but %s is unset: start it with `scripts/services up %s` and export `scripts/services env`", service, EnvRequire, env, service)
	}
	t.Skipf("%s not configured (%s unset); `make test` starts it and runs this test", service, env)
	return ""
}

func reachable(t testing.TB, service, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("%s at %s does not answer: %v (start it with `scripts/services up %s`)", service, addr, err, service)
	}
	c.Close()
}

// KafkaTopic creates topic, with one partition and the given topic configs
// (such as max.message.bytes), on the real Kafka service.
func KafkaTopic(t testing.TB, topic string, configs map[string]string) {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin(Kafka(t), sc)
	if err != nil {
		t.Fatalf("kafka admin: %v", err)
	}
	defer admin.Close()
	entries := map[string]*string{}
	for k, v := range configs {
		entries[k] = &v
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: entries}, false); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}
