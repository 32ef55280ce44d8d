package config

import (
	"strings"
	"testing"
)

func kafkaConfig(set func(k *KafkaConfig)) Config {
	c := Default()
	c.Streams.Type = StreamsKafka
	c.Streams.Kafka.Brokers = []string{"127.0.0.1:9092"}
	if set != nil {
		set(&c.Streams.Kafka)
	}
	return c
}

func TestStreamsValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"embedded by default", Default(), ""},
		{"kafka", kafkaConfig(nil), ""},
		{"unknown type", func() Config { c := Default(); c.Streams.Type = "kinesis"; return c }(), `streams.type: "kinesis" is not embedded or kafka`},
		{"no brokers", kafkaConfig(func(k *KafkaConfig) { k.Brokers = nil }), "streams.kafka.brokers: at least one host:port is required"},
		{"broker without port", kafkaConfig(func(k *KafkaConfig) { k.Brokers = []string{"kafka1"} }), `streams.kafka.brokers[0]: "kafka1": address kafka1: missing port in address`},
		{"broker without host", kafkaConfig(func(k *KafkaConfig) { k.Brokers = []string{":9092"} }), `streams.kafka.brokers[0]: ":9092" has no host`},
		{"partition key", kafkaConfig(func(k *KafkaConfig) { k.RawPartitionKey = "user" }), `streams.kafka.raw_partition_key: "user" is not random or ip`},
		{"enriched key", kafkaConfig(func(k *KafkaConfig) { k.EnrichedPartitionKey = "user" }), `streams.kafka.enriched_partition_key: "user" is not an enriched field`},
		{"enriched key ok", kafkaConfig(func(k *KafkaConfig) { k.EnrichedPartitionKey = "domain_userid"; k.EnrichedHeaders = []string{"app_id"} }), ""},
		{"header", kafkaConfig(func(k *KafkaConfig) { k.EnrichedHeaders = []string{"app_id", "appid"} }), `streams.kafka.enriched_headers[1]: "appid" is not an enriched field`},
		{"topic name", kafkaConfig(func(k *KafkaConfig) { k.Topics.Raw = "raw good" }), `streams.kafka.topics.raw: "raw good" holds ' ': a topic name has only ASCII letters, digits, '.', '_' and '-'`},
		{"topic twice", kafkaConfig(func(k *KafkaConfig) { k.Topics.Bad = k.Topics.RawBad }), `streams.kafka.topics.bad: "snowplow-collector-bad" is also topics.raw_bad`},
		{"topic missing", kafkaConfig(func(k *KafkaConfig) { k.Topics.Enriched = "" }), "streams.kafka.topics.enriched is required"},
		{"seed 004's topics", kafkaConfig(func(k *KafkaConfig) {
			k.Topics = Topics{Raw: "snowplow_raw_good", RawBad: "snowplow_raw_bad", Enriched: "snowplow_parsed_good", Bad: "snowplow_parsed_bad", JSON: "snowplow_json_event"}
		}), ""},
		{"sasl", kafkaConfig(func(k *KafkaConfig) { k.SASL.Mechanism = "SCRAM-SHA-256"; k.SASL.Username = "u" }), "streams.kafka.sasl: SCRAM-SHA-256 needs username and password"},
		{"sasl mechanism", kafkaConfig(func(k *KafkaConfig) { k.SASL.Mechanism = "GSSAPI" }), `streams.kafka.sasl.mechanism: "GSSAPI" is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`},
		{"tls files without tls", kafkaConfig(func(k *KafkaConfig) { k.TLS.CAFile = "ca.pem" }), "streams.kafka.tls: files or server_name set while tls.enabled is false"},
		{"max record", kafkaConfig(func(k *KafkaConfig) { k.MaxRecordBytes = 10 }), "streams.kafka.max_record_bytes: 10 is below 1 KiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// A file sets the section by the names the README gives.
func TestStreamsFromFile(t *testing.T) {
	c, err := Load(write(t, `streams:
  type: kafka
  kafka:
    brokers: [127.0.0.1:9092, "[::1]:9093"]
    raw_partition_key: ip
    enriched_partition_key: domain_userid
    enriched_headers: [app_id]
    sasl: {mechanism: PLAIN, username: furrow, password: s3cret}
    topics: {raw: snowplow_raw_good}
`))
	if err != nil {
		t.Fatal(err)
	}
	k := c.Streams.Kafka
	if c.Streams.Type != StreamsKafka || len(k.Brokers) != 2 || k.RawPartitionKey != "ip" || k.Topics.Raw != "snowplow_raw_good" || k.Topics.Enriched != "snowplow-enriched" || k.SASL.Password.Value() != "s3cret" {
		t.Fatalf("%+v", c.Streams)
	}
}
