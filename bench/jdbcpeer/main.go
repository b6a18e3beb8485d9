// Command jdbcpeer prepares and times bench/sqlsink.sh's peer, Kafka
// Connect's JDBC sink (Debezium's), writing the events of the sql sink's
// benchmark into PostgreSQL:
//
//	jdbcpeer feed -topic T -table TB -n N   creates TB (the columns the sql
//	                                        sink's benchmark writes, and
//	                                        written_at, each row's insert
//	                                        time) and fills the new topic T
//	                                        (3 partitions) with the same N
//	                                        1 KB events, as records that
//	                                        Kafka Connect's JsonConverter
//	                                        reads (schema and payload)
//	jdbcpeer wait -table TB -n N            waits until TB holds N rows and
//	                                        prints rows/s from its first to
//	                                        its last row (written_at)
//	jdbcpeer drop -table TB                 drops TB
//	jdbcpeer props                          prints the JDBC URL, user and
//	                                        password of the PostgreSQL DSN,
//	                                        as connector properties
//
// The DSN is TRIBUTARY_POSTGRES_URL (scripts/services env).
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/tributary/tributary/core/sinkbench"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: jdbcpeer feed|wait|drop|props [flags]"))
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	topic := fs.String("topic", "", "topic to create and fill (feed)")
	table := fs.String("table", "", "table the peer writes (feed, wait)")
	n := fs.Int("n", 100000, "events")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long wait waits for the rows")
	_ = fs.Parse(os.Args[2:])
	dsn := os.Getenv("TRIBUTARY_POSTGRES_URL")
	if dsn == "" {
		fail(errors.New("TRIBUTARY_POSTGRES_URL is not set: run eval \"$(scripts/services env)\" first"))
	}
	var err error
	switch os.Args[1] {
	case "feed":
		err = feed(dsn, strings.Split(*brokers, ","), *topic, *table, *n)
	case "wait":
		err = wait(dsn, *table, *n, *timeout)
	case "drop":
		err = drop(dsn, *table)
	case "props":
		err = props(dsn)
	default:
		err = fmt.Errorf("unknown command %q: feed, wait, drop or props", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "jdbcpeer:", err)
	os.Exit(1)
}

// drop drops the peer's table.
func drop(dsn, table string) error {
	if table == "" {
		return errors.New("drop needs -table")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("DROP TABLE IF EXISTS " + table); err != nil {
		return fmt.Errorf("drop table %s: %w", table, err)
	}
	return nil
}

// props prints the connector's connection properties.
func props(dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("TRIBUTARY_POSTGRES_URL is not a URL such as postgres://user:pass@host:5432/db: %w", err)
	}
	pass, _ := u.User.Password()
	fmt.Printf("connection.url=jdbc:postgresql://%s%s\n", u.Host, u.Path)
	fmt.Printf("connection.username=%s\n", u.User.Username())
	fmt.Printf("connection.password=%s\n", pass)
	return nil
}

// schema is the Kafka Connect schema of the records' values: the sql sink
// benchmark's columns, total a Decimal of scale 2.
var schema = json.RawMessage(`{"type": "struct", "optional": false, "name": "order", "fields": [
	{"field": "event_id", "type": "string", "optional": false},
	{"field": "order_id", "type": "string", "optional": true},
	{"field": "seq", "type": "int64", "optional": true},
	{"field": "total", "type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "version": 1, "parameters": {"scale": "2"}},
	{"field": "note", "type": "string", "optional": true}]}`)

// feed creates the table and the topic and fills the topic.
func feed(dsn string, brokers []string, topic, table string, n int) error {
	if topic == "" || table == "" {
		return errors.New("feed needs -topic and -table")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	// The sql sink's benchmark table (create_table), and each row's
	// insert time.
	_, err = db.Exec(`CREATE TABLE ` + table + ` (event_id TEXT PRIMARY KEY, order_id TEXT, seq BIGINT, total NUMERIC, note TEXT,
		written_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())`)
	if err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_0_0_0
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Flush.Messages = 512
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		return fmt.Errorf("connect to Kafka at %s: %w", strings.Join(brokers, ","), err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	prod, err := sarama.NewAsyncProducer(brokers, cfg)
	if err != nil {
		return fmt.Errorf("connect to Kafka at %s: %w", strings.Join(brokers, ","), err)
	}
	done := make(chan error, 1)
	go func() {
		var first error
		acked := 0
		for acked < n {
			select {
			case <-prod.Successes():
				acked++
			case e := <-prod.Errors():
				acked++
				if first == nil {
					first = e.Err
				}
			}
		}
		done <- first
	}()
	for _, ev := range sinkbench.Events("sql", n) {
		var d struct {
			OrderID string `json:"order_id"`
			Seq     int64  `json:"seq"`
			Total   string `json:"total"`
			Note    string `json:"note"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return err
		}
		// The Decimal's JSON form: its unscaled value, big-endian two's
		// complement, in base64 (129.90 is 12990).
		total := strings.ReplaceAll(d.Total, ".", "")
		var unscaled int64
		fmt.Sscan(total, &unscaled)
		value, err := json.Marshal(map[string]any{"schema": schema, "payload": map[string]any{
			"event_id": ev.ID, "order_id": d.OrderID, "seq": d.Seq, "total": bigEndian(unscaled), "note": d.Note,
		}})
		if err != nil {
			return err
		}
		prod.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(ev.PartitionKey), Value: sarama.ByteEncoder(value)}
	}
	err = <-done
	if cerr := prod.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("produce to %s: %w", topic, err)
	}
	fmt.Printf("fed %d records of 1 KB events to %s\n", n, topic)
	return nil
}

// bigEndian is v as the shortest big-endian two's complement bytes.
func bigEndian(v int64) []byte {
	b := []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	for len(b) > 1 && ((b[0] == 0 && b[1]&0x80 == 0) || (b[0] == 0xff && b[1]&0x80 != 0)) {
		b = b[1:]
	}
	return b
}

// wait waits for n rows in table and prints the rate from the first row
// written to the last.
func wait(dsn, table string, n int, timeout time.Duration) error {
	if table == "" {
		return errors.New("wait needs -table")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	last, lastChange := -1, time.Now()
	for {
		var count int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&count); err != nil {
			return fmt.Errorf("count the rows of %s (%d so far): %w", table, max(last, 0), err)
		}
		if count >= n {
			break
		}
		if count != last {
			last, lastChange = count, time.Now()
		} else if time.Since(lastChange) > 2*time.Minute {
			return fmt.Errorf("%s holds %d rows of %d and none came for 2 minutes: see the Kafka Connect log", table, count, n)
		}
		time.Sleep(500 * time.Millisecond)
	}
	var first, lastAt time.Time
	var rows int
	err = db.QueryRowContext(ctx, "SELECT MIN(written_at), MAX(written_at), COUNT(*) FROM "+table).Scan(&first, &lastAt, &rows)
	if err != nil {
		return err
	}
	el := lastAt.Sub(first)
	fmt.Printf("peer: %d rows in %.2fs from the first to the last row: %.0f rows/s\n", rows, el.Seconds(), float64(rows)/el.Seconds())
	return nil
}
