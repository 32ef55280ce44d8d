// Package kafka joins furrow's stages over Kafka topics, with franz-go:
// a Sink that produces to one topic and tells when the brokers hold what
// it was given.
package kafka

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/furrow-io/furrow/internal/analytics"
	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/payload"
	"github.com/furrow-io/furrow/internal/stream"
)

// NewClient connects to the brokers of c as a producer: idempotent, every
// record acknowledged by all in-sync replicas (acks=all), retried by the
// client until it is acknowledged or fails for good. It does not wait
// for the brokers: a client made while they are down connects once they
// are up.
func NewClient(c config.KafkaConfig) (*kgo.Client, error) {
	opts, err := clientOpts(c)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(int32(min(int64(c.MaxRecordBytes)+64<<10, 1<<30))),
		kgo.ProducerLinger(5*time.Millisecond),
		// A missing topic fails its records soon rather than being
		// retried for ever: furrow reports it by name.
		kgo.UnknownTopicRetries(3),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return cl, nil
}

// clientOpts are the options of every client: brokers, id, TLS, SASL,
// and a connState (see connOf).
func clientOpts(c config.KafkaConfig) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(c.ClientID), kgo.WithHooks(&connState{})}
	if c.TLS.Enabled {
		cfg, err := tlsConfig(c.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if m := mechanism(c.SASL); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func tlsConfig(c config.KafkaTLS) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("streams.kafka.tls.ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("streams.kafka.tls.ca_file: %s holds no PEM certificate", c.CAFile)
		}
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("streams.kafka.tls: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func mechanism(c config.KafkaSASL) sasl.Mechanism {
	switch c.Mechanism {
	case "PLAIN":
		return plain.Auth{User: c.Username, Pass: c.Password.Value()}.AsMechanism()
	case "SCRAM-SHA-256":
		return scram.Auth{User: c.Username, Pass: c.Password.Value()}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		return scram.Auth{User: c.Username, Pass: c.Password.Value()}.AsSha512Mechanism()
	}
	return nil
}

// connOf finds the connState among cl's hooks.
func connOf(cl *kgo.Client) *connState {
	for _, h := range cl.OptValues(kgo.WithHooks) {
		if hs, ok := h.([]kgo.Hook); ok {
			for _, x := range hs {
				if c, ok := x.(*connState); ok {
					return c
				}
			}
		}
	}
	return &connState{}
}

// Key makes a record's key from its value.
type Key func(value []byte) []byte

// RandomKey keys each record with a new UUID (as text), which spreads
// records over the partitions: Snowplow's collector default.
func RandomKey([]byte) []byte { return []byte(uuid.NewString()) }

// IPKey keys a raw record (Thrift CollectorPayload) with the client's IP
// address, as Snowplow's collector does with useIpAddressAsPartitionKey;
// a record that is not a payload gets a random key.
func IPKey(value []byte) []byte {
	p, err := payload.Unmarshal(value)
	if err != nil || p.IPAddress == "" {
		return RandomKey(value)
	}
	return []byte(p.IPAddress)
}

// FieldKey keys an enriched TSV line with its field i (an event.Fields
// index), or a random UUID where that field is empty: Snowplow's
// enricher partitionKey.
func FieldKey(i int) Key {
	return func(v []byte) []byte {
		if f := tsvField(v, i); len(f) > 0 {
			return f
		}
		return RandomKey(v)
	}
}

// Headers makes a record's headers from its value.
type Headers func(value []byte) []kgo.RecordHeader

// FieldHeaders sends enriched fields as record headers, each named as the
// field, skipping empty ones (Snowplow's enricher "attributes").
func FieldHeaders(names []string, index []int) Headers {
	return func(v []byte) []kgo.RecordHeader {
		var hs []kgo.RecordHeader
		for i, name := range names {
			if f := tsvField(v, index[i]); len(f) > 0 {
				hs = append(hs, kgo.RecordHeader{Key: name, Value: f})
			}
		}
		return hs
	}
}

// tsvField returns field i of a TSV line, nil if it has fewer fields.
func tsvField(line []byte, i int) []byte {
	for ; i > 0; i-- {
		j := bytes.IndexByte(line, '\t')
		if j < 0 {
			return nil
		}
		line = line[j+1:]
	}
	if j := bytes.IndexByte(line, '\t'); j >= 0 {
		return line[:j]
	}
	return bytes.TrimRight(line, "\r\n")
}

// truncateUTF8 cuts b to at most n bytes, at a UTF-8 character boundary.
func truncateUTF8(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	b = b[:n]
	for k := 0; k < utf8.UTFMax && len(b) > 0; k++ {
		if r, size := utf8.DecodeLastRune(b); r != utf8.RuneError || size > 1 {
			return b
		}
		b = b[:len(b)-1]
	}
	return b
}

// AckWait is how long Flush waits for the brokers before it reports them
// failing; the records stay with the client, which keeps trying.
const AckWait = 10 * time.Second

// Sink produces records to one topic. Write hands them to the client,
// which sends them in the background; Flush returns once the brokers
// have acknowledged every record written before it (acks=all), so that
// the caller may acknowledge its input then, and only then (stream.Sink,
// stream.Flusher).
//
// A Flush that waits longer than AckWait returns a retryable error naming
// what is missing, and the next Flush goes on waiting for the same
// records: nothing is produced twice for a slow or absent broker.
// Records the client gave up on are produced again by that next Flush;
// if the brokers had in fact stored one, the topic holds it twice
// (delivery into Kafka is at least once). A missing topic, a refused
// authentication or authorization, and a record over the topic's size
// limit are permanent errors, each naming the topic.
type Sink struct {
	cl    *kgo.Client
	topic string
	key   Key
	wait  time.Duration
	// Headers, when set, gives each record its headers.
	Headers Headers
	// MaxBytes, when set, truncates larger records to it, on a UTF-8
	// boundary (bad rows: a topic refuses records over its
	// max.message.bytes).
	MaxBytes int

	mu      sync.Mutex
	pending []*produced // written and not yet acknowledged, in order
}

type produced struct {
	rec  *kgo.Record
	done chan struct{}
	err  error
}

// NewSink produces to topic through cl, keying records with key.
func NewSink(cl *kgo.Client, topic string, key Key) *Sink {
	if key == nil {
		key = RandomKey
	}
	return &Sink{cl: cl, topic: topic, key: key, wait: AckWait}
}

var (
	_ stream.Sink    = (*Sink)(nil)
	_ stream.Flusher = (*Sink)(nil)
)

// Write hands recs to the client. Their memory must stay as it is until
// Flush has returned nil: the client sends it as it is.
func (s *Sink) Write(_ context.Context, recs ...[]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		p := &produced{rec: s.Record(r)}
		s.pending = append(s.pending, p)
		s.send(p)
	}
	return nil
}

// Record is the record Write makes of value (truncated, keyed, with its
// headers), for a caller that produces it itself (in a transaction).
func (s *Sink) Record(value []byte) *kgo.Record {
	if s.MaxBytes > 0 {
		value = truncateUTF8(value, s.MaxBytes)
	}
	r := &kgo.Record{Topic: s.topic, Key: s.key(value), Value: value}
	if s.Headers != nil {
		r.Headers = s.Headers(value)
	}
	return r
}

// send produces p. The record's context is not the caller's: a stop must
// not fail records in flight, which the next start would send again.
func (s *Sink) send(p *produced) {
	p.done, p.err = make(chan struct{}), nil
	s.cl.Produce(context.Background(), p.rec, func(_ *kgo.Record, err error) {
		p.err = err
		close(p.done)
	})
}

// Flush waits for the brokers to acknowledge every record written.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	timer := time.NewTimer(s.wait)
	defer timer.Stop()
	for i, p := range s.pending {
		select {
		case <-p.done:
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			if err := connOf(s.cl).last(); err != nil && refused(err) {
				// The client retries a refused login for ever: the
				// records never fail, so say it here.
				return classify(s.topic, err, len(s.pending)-i)
			}
			return fmt.Errorf("kafka: topic %s: %d of %d records not acknowledged by the brokers after %s; the client keeps trying (are the brokers reachable?)%s", s.topic, len(s.pending)-i, len(s.pending), s.wait, connOf(s.cl).why())
		}
	}
	var failed []*produced
	var first error
	for _, p := range s.pending {
		if p.err != nil {
			failed = append(failed, p)
			if first == nil {
				first = p.err
			}
		}
	}
	s.pending = s.pending[:0]
	if len(failed) == 0 {
		return nil
	}
	err := classify(s.topic, first, len(failed))
	if !stream.IsPermanent(err) {
		for _, p := range failed {
			s.pending = append(s.pending, p)
			s.send(p)
		}
	}
	return err
}

// Close flushes nothing; the client is closed by its owner.
func (s *Sink) Close(context.Context) error { return nil }

// refused tells the brokers' refusals of furrow itself: authentication
// and authorization.
func refused(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) ||
		errors.Is(err, kerr.GroupAuthorizationFailed) || errors.Is(err, kerr.SaslAuthenticationFailed) ||
		errors.Is(err, kerr.IllegalSaslState) || errors.Is(err, kerr.UnsupportedSaslMechanism) ||
		strings.Contains(err.Error(), "SASL")
}

// classify turns a produce error into one a stage acts on.
func classify(topic string, err error, n int) error {
	what := fmt.Sprintf("kafka: topic %s: %d records failed", topic, n)
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return stream.Permanent(fmt.Errorf("kafka: topic %s does not exist on the brokers; furrow does not create topics: create it, or name another in streams.kafka.topics (%w)", topic, err))
	case refused(err):
		return stream.Permanent(fmt.Errorf("%s: the brokers refused furrow (check streams.kafka.sasl and the topic's ACLs): %w", what, err))
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return stream.Permanent(fmt.Errorf("%s: a record is larger than the topic or the brokers accept (streams.kafka.max_record_bytes must not exceed the topic's max.message.bytes): %w", what, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Tee writes to every sink and flushes them all: the enriched topic and
// its JSON twin (JSONSink).
type Tee []stream.Sink

// Write writes recs to each sink in turn.
func (t Tee) Write(ctx context.Context, recs ...[]byte) error {
	for _, s := range t {
		if err := s.Write(ctx, recs...); err != nil {
			return err
		}
	}
	return nil
}

// Flush flushes each sink that buffers; a sink's failure is returned
// after the others are flushed, so a retry only waits on what is left.
func (t Tee) Flush(ctx context.Context) error {
	var errs []error
	for _, s := range t {
		errs = append(errs, stream.Flush(ctx, s))
	}
	return errors.Join(errs...)
}

// Close closes nothing: the sinks' owner does.
func (t Tee) Close(context.Context) error { return nil }

// JSONSink turns enriched TSV lines into Analytics SDK JSON events (one
// JSON object per record, seed 004's snowplow_json_event) and writes them
// to S, each keyed by Key applied to its TSV line (as the enriched topic
// is). A line that cannot be turned is not written (the enriched topic
// holds it; the enricher only writes lines it made).
type JSONSink struct {
	S   *Sink
	Key Key
	Log *slog.Logger
}

// Write converts and writes recs.
func (j JSONSink) Write(_ context.Context, recs ...[]byte) error {
	j.S.mu.Lock()
	defer j.S.mu.Unlock()
	for _, r := range recs {
		if rec := j.Record(r); rec != nil {
			p := &produced{rec: rec}
			j.S.pending = append(j.S.pending, p)
			j.S.send(p)
		}
	}
	return nil
}

// Record is the JSON record of an enriched line, nil if it has no JSON
// form (logged).
func (j JSONSink) Record(line []byte) *kgo.Record {
	v, err := analytics.AppendEventJSON(nil, line)
	if err != nil {
		j.Log.Warn("kafka: an enriched line has no JSON form; left out of the JSON topic", "topic", j.S.topic, "err", err)
		return nil
	}
	return &kgo.Record{Topic: j.S.topic, Key: j.Key(line), Value: v}
}

// Flush waits for the brokers.
func (j JSONSink) Flush(ctx context.Context) error { return j.S.Flush(ctx) }

// Close closes nothing.
func (j JSONSink) Close(context.Context) error { return nil }
