package config

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/furrow-io/furrow/internal/event"
)

// Stream types: what joins furrow's stages.
const (
	StreamsEmbedded = "embedded" // the logs under data_dir; furrow run
	StreamsKafka    = "kafka"    // Kafka topics; the roles as processes
)

// StreamsConfig chooses what joins the collector, the enricher and the
// loaders: the embedded log (one process, `furrow run`) or Kafka topics,
// so that `furrow collect`, `furrow enrich` and `furrow load` can run
// apart. The same file serves every role.
type StreamsConfig struct {
	// Type is embedded (the default) or kafka.
	Type  string      `yaml:"type"`
	Kafka KafkaConfig `yaml:"kafka"`
}

// KafkaConfig is how furrow reaches Kafka and what it names its topics.
type KafkaConfig struct {
	// Brokers are the bootstrap brokers, host:port each.
	Brokers []string `yaml:"brokers"`
	// ClientID names furrow's connections to the brokers.
	ClientID string    `yaml:"client_id"`
	TLS      KafkaTLS  `yaml:"tls"`
	SASL     KafkaSASL `yaml:"sasl"`
	Topics   Topics    `yaml:"topics"`
	// RawPartitionKey keys the raw topic's records: random (a UUID per
	// payload, Snowplow's collector default) or ip (the client's address,
	// its useIpAddressAsPartitionKey).
	RawPartitionKey string `yaml:"raw_partition_key"`
	// EnrichedPartitionKey names the enriched field that keys the
	// enriched topic's records (domain_userid, app_id, ...); empty, a
	// random UUID, as Snowplow's enricher does without partitionKey.
	EnrichedPartitionKey string `yaml:"enriched_partition_key"`
	// EnrichedHeaders are enriched fields sent as record headers of the
	// enriched topic (Snowplow's enricher "attributes", e.g. app_id).
	EnrichedHeaders []string `yaml:"enriched_headers"`
	// MaxRecordBytes is the largest record furrow produces (the topics'
	// max.message.bytes): bad rows are truncated to it, on a UTF-8
	// boundary; a raw payload over it is a size violation.
	MaxRecordBytes ByteSize `yaml:"max_record_bytes"`
	// ConsumerGroup prefixes the consumer groups of furrow enrich
	// (<prefix>-enrich) and furrow load (<prefix>-load-<destination>).
	ConsumerGroup string `yaml:"consumer_group"`
	// SessionTimeout is how long the group waits for a member that went
	// silent (killed, cut off) before it gives its partitions to the
	// others: Kafka's session.timeout.ms (45s, as Snowplow's enricher).
	// The brokers bound it (group.min/max.session.timeout.ms).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// ExactlyOnce makes furrow enrich write each batch's outputs and
	// commit its input offsets in one Kafka transaction (on by default):
	// a crash or a rebalance never writes an event twice to the output
	// topics. Off, for brokers without transactions (Azure Event Hubs),
	// a replay after a crash writes those events again.
	ExactlyOnce bool `yaml:"exactly_once"`
}

// KafkaTLS turns TLS on for the broker connections.
type KafkaTLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the brokers' certificates (the system's roots
	// without it); CertFile and KeyFile are a client certificate.
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the brokers' certificates.
	ServerName string `yaml:"server_name"`
}

// KafkaSASL authenticates furrow to the brokers.
type KafkaSASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty, none.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  Secret `yaml:"password"`
}

// Topics are the topic names, Snowplow's by default; seed 004's layout
// (snowplow_raw_good, ...) is a matter of setting them.
type Topics struct {
	// Raw: Thrift CollectorPayload records, as Snowplow's collector writes.
	Raw string `yaml:"raw"`
	// RawBad: the collector's size_violation bad rows.
	RawBad string `yaml:"raw_bad"`
	// Enriched: enriched TSV lines.
	Enriched string `yaml:"enriched"`
	// Bad: the enricher's bad rows (self-describing JSON).
	Bad string `yaml:"bad"`
	// JSON, when set: one Analytics SDK JSON event per record.
	JSON string `yaml:"json"`
}

// DefaultMaxRecordBytes is Kafka's default max.message.bytes (1 MiB plus
// a record batch's overhead), rounded down to what a record may hold.
const DefaultMaxRecordBytes = 1000000

// DefaultStreamsConfig is the embedded log, and Snowplow's topic names
// for when Kafka is chosen.
func DefaultStreamsConfig() StreamsConfig {
	return StreamsConfig{Type: StreamsEmbedded, Kafka: KafkaConfig{
		ClientID:        "furrow",
		RawPartitionKey: "random",
		MaxRecordBytes:  DefaultMaxRecordBytes,
		ConsumerGroup:   "furrow",
		SessionTimeout:  45 * time.Second,
		ExactlyOnce:     true,
		Topics: Topics{
			Raw:      "snowplow-collector-payloads",
			RawBad:   "snowplow-collector-bad",
			Enriched: "snowplow-enriched",
			Bad:      "snowplow-bad",
		},
	}}
}

// Validate reports every error of the section. Kafka's settings are
// checked only when they are used.
func (c *StreamsConfig) Validate() error {
	switch c.Type {
	case StreamsEmbedded:
		return nil
	case StreamsKafka:
		return errors.Join(within("kafka", c.Kafka.Validate())...)
	}
	return fmt.Errorf("type: %q is not %s or %s", c.Type, StreamsEmbedded, StreamsKafka)
}

// Validate reports every error of the kafka section.
func (c *KafkaConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one host:port is required"))
	}
	for i, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("brokers[%d]: %q: %v", i, b, err))
		case host == "":
			errs = append(errs, fmt.Errorf("brokers[%d]: %q has no host", i, b))
		default:
			if _, err := net.LookupPort("tcp", port); err != nil {
				errs = append(errs, fmt.Errorf("brokers[%d]: port %q is not a port number", i, port))
			}
		}
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("client_id is required"))
	}
	if c.SessionTimeout < time.Second {
		errs = append(errs, fmt.Errorf("session_timeout: %s is under a second", c.SessionTimeout))
	}
	if c.ConsumerGroup == "" {
		errs = append(errs, errors.New("consumer_group is required"))
	}
	switch c.RawPartitionKey {
	case "random", "ip":
	default:
		errs = append(errs, fmt.Errorf("raw_partition_key: %q is not random or ip", c.RawPartitionKey))
	}
	if _, ok := event.Index(c.EnrichedPartitionKey); c.EnrichedPartitionKey != "" && !ok {
		errs = append(errs, fmt.Errorf("enriched_partition_key: %q is not an enriched field", c.EnrichedPartitionKey))
	}
	for i, h := range c.EnrichedHeaders {
		if _, ok := event.Index(h); !ok {
			errs = append(errs, fmt.Errorf("enriched_headers[%d]: %q is not an enriched field", i, h))
		}
	}
	if c.MaxRecordBytes < 1024 {
		errs = append(errs, fmt.Errorf("max_record_bytes: %s is below 1 KiB", c.MaxRecordBytes))
	}
	seen := map[string]string{}
	for _, t := range []struct{ name, topic string }{
		{"raw", c.Topics.Raw}, {"raw_bad", c.Topics.RawBad}, {"enriched", c.Topics.Enriched}, {"bad", c.Topics.Bad}, {"json", c.Topics.JSON},
	} {
		if t.topic == "" {
			if t.name != "json" {
				errs = append(errs, fmt.Errorf("topics.%s is required", t.name))
			}
			continue
		}
		if err := validTopic(t.topic); err != nil {
			errs = append(errs, fmt.Errorf("topics.%s: %w", t.name, err))
		}
		if other, ok := seen[t.topic]; ok {
			errs = append(errs, fmt.Errorf("topics.%s: %q is also topics.%s", t.name, t.topic, other))
		}
		seen[t.topic] = t.name
	}
	if c.TLS.Enabled && (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file go together"))
	}
	if !c.TLS.Enabled && (c.TLS.CAFile != "" || c.TLS.CertFile != "" || c.TLS.KeyFile != "" || c.TLS.ServerName != "") {
		errs = append(errs, errors.New("tls: files or server_name set while tls.enabled is false"))
	}
	switch c.SASL.Mechanism {
	case "":
		if c.SASL.Username != "" || c.SASL.Password != "" {
			errs = append(errs, errors.New("sasl: username or password set without a mechanism"))
		}
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.SASL.Username == "" || c.SASL.Password == "" {
			errs = append(errs, fmt.Errorf("sasl: %s needs username and password", c.SASL.Mechanism))
		}
	default:
		errs = append(errs, fmt.Errorf("sasl.mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASL.Mechanism))
	}
	return errors.Join(errs...)
}

// validTopic checks a name as Kafka does: 1-249 characters of ASCII
// letters, digits, '.', '_' and '-', and not "." or "..".
func validTopic(name string) error {
	if len(name) > 249 {
		return fmt.Errorf("%q is longer than 249 characters", name)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%q is not a topic name", name)
	}
	if i := strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}); i >= 0 {
		return fmt.Errorf("%q holds %q: a topic name has only ASCII letters, digits, '.', '_' and '-'", name, name[i])
	}
	return nil
}
