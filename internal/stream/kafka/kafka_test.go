package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/stream"
	"github.com/furrow-io/furrow/internal/testutil"
)

func client(t *testing.T, addr string) *kgo.Client {
	t.Helper()
	c := config.DefaultStreamsConfig().Kafka
	c.Brokers = []string{addr}
	cl, err := NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consume reads topic from the start until it has n records or 30 s pass.
func consume(t *testing.T, addr, topic string, n int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []string
	for len(got) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}

// Flush returns once the broker holds every record written; with the
// broker down it reports so after the wait, and the next Flush, once the
// broker is back, completes the same records without producing any
// twice. A missing topic is a permanent error that names it.
func TestSink(t *testing.T) {
	k := testutil.Kafka(t)
	k.CreateTopic("raw", 2)
	ctx := context.Background()
	s := NewSink(client(t, k.Addr()), "raw", nil)
	s.wait = 2 * time.Second
	recs := func(from, n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = []byte(fmt.Sprintf("record-%d", from+i))
		}
		return out
	}
	if err := s.Write(ctx, recs(0, 100)...); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	k.Kill()
	if err := s.Write(ctx, recs(100, 50)...); err != nil {
		t.Fatal(err)
	}
	err := s.Flush(ctx)
	if err == nil || stream.IsPermanent(err) || !strings.Contains(err.Error(), "not acknowledged by the brokers") {
		t.Fatalf("Flush with the broker down: %v", err)
	}
	k.Start()
	deadline := time.Now().Add(60 * time.Second)
	for err != nil && time.Now().Before(deadline) {
		err = s.Flush(ctx)
	}
	if err != nil {
		t.Fatalf("Flush after the broker came back: %v", err)
	}
	got := consume(t, k.Addr(), "raw", 150)
	seen := map[string]int{}
	for _, v := range got {
		seen[v]++
	}
	for i := range 150 {
		if c := seen[fmt.Sprintf("record-%d", i)]; c != 1 {
			t.Errorf("record-%d in the topic %d times", i, c)
		}
	}

	missing := NewSink(client(t, k.Addr()), "no-such-topic", nil)
	if err := missing.Write(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	err = missing.Flush(ctx)
	for i := 0; err != nil && !stream.IsPermanent(err) && i < 10; i++ {
		err = missing.Flush(ctx) // the client may still be retrying
	}
	if !stream.IsPermanent(err) || !strings.Contains(err.Error(), "no-such-topic does not exist") {
		t.Fatalf("a missing topic: %v", err)
	}
}

// A Source reads every record once per group; after a close, the group
// resumes after what was acknowledged: what was read and not acknowledged
// is read again, nothing is skipped.
func TestSource(t *testing.T) {
	k := testutil.Kafka(t)
	k.CreateTopic("in", 3)
	ctx := context.Background()
	s := NewSink(client(t, k.Addr()), "in", nil)
	for i := range 300 {
		s.Write(ctx, []byte(fmt.Sprintf("r%03d", i)))
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c := config.DefaultStreamsConfig().Kafka
	c.Brokers = []string{k.Addr()}
	read := func(src *Source, n int, ack bool) map[string]bool {
		t.Helper()
		got := map[string]bool{}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for len(got) < n {
			b, err := src.Read(rctx)
			if err != nil {
				t.Fatalf("read after %d: %v", len(got), err)
			}
			for _, r := range b.Records {
				got[string(r)] = true
			}
			if ack {
				if err := b.Ack(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		return got
	}
	src, err := NewSource(c, "g", "in", 50, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	first := read(src, 120, true)
	src.Close(ctx)
	// The group's lag, as the metric reports it: what it did not commit.
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewLagCollector(client(t, k.Addr()), "g"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	lag, parts := 0.0, 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			lag += m.GetGauge().GetValue()
			parts++
		}
	}
	if parts != 3 || int(lag) != 300-len(first) {
		t.Errorf("furrow_kafka_consumer_lag: %v over %d partitions, want %d over 3", lag, parts, 300-len(first))
	}
	src, err = NewSource(c, "g", "in", 1000, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	rest := read(src, 300-len(first), false)
	for i := range 300 {
		r := fmt.Sprintf("r%03d", i)
		if !first[r] && !rest[r] {
			t.Errorf("%s never read", r)
		}
	}
	if len(rest) > 300-len(first)+100 {
		t.Errorf("%d records read again after %d acknowledged", len(rest), len(first))
	}
}

// SASL: the right password produces, a wrong one is a permanent error
// that says the brokers refused furrow.
func TestSinkSASL(t *testing.T) {
	k := testutil.Kafka(t)
	k.CreateTopic("raw", 1)
	ctx := context.Background()
	for _, tt := range []struct {
		password string
		ok       bool
	}{{testutil.KafkaSASLPassword, true}, {"wrong", false}} {
		c := config.DefaultStreamsConfig().Kafka
		c.Brokers = []string{k.SASLAddr()}
		c.SASL = config.KafkaSASL{Mechanism: "PLAIN", Username: testutil.KafkaSASLUser, Password: config.Secret(tt.password)}
		cl, err := NewClient(c)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		s := NewSink(cl, "raw", nil)
		s.wait = 5 * time.Second
		s.Write(ctx, []byte("x"))
		err = s.Flush(ctx)
		for i := 0; err != nil && !stream.IsPermanent(err) && i < 6; i++ {
			err = s.Flush(ctx)
		}
		switch {
		case tt.ok && err != nil:
			t.Fatalf("right password: %v", err)
		case !tt.ok && (!stream.IsPermanent(err) || !strings.Contains(err.Error(), "refused furrow")):
			t.Fatalf("wrong password: %v", err)
		}
		t.Logf("password %q: %v", tt.password, err)
	}
}

// TestSinkTLS produces through the broker's TLS listener, which requires
// a client certificate: with the CA and the certificate it works; without
// the CA the broker's certificate is refused, and without the client
// certificate the broker refuses furrow, each said in the error.
func TestSinkTLS(t *testing.T) {
	k := testutil.Kafka(t)
	k.CreateTopic("raw", 1)
	f := k.TLSFiles()
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		tls  config.KafkaTLS
		ok   bool
		says string
	}{
		{"mutual TLS", config.KafkaTLS{Enabled: true, CAFile: f.CA, CertFile: f.ClientCert, KeyFile: f.ClientKey}, true, ""},
		{"unknown CA", config.KafkaTLS{Enabled: true, CertFile: f.ClientCert, KeyFile: f.ClientKey}, false, "certificate"},
		{"no client certificate", config.KafkaTLS{Enabled: true, CAFile: f.CA}, false, "bad certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := config.DefaultStreamsConfig().Kafka
			c.Brokers = []string{k.TLSAddr()}
			c.TLS = tt.tls
			cl, err := NewClient(c)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			s := NewSink(cl, "raw", nil)
			s.wait = 4 * time.Second
			s.Write(ctx, []byte("x"))
			err = s.Flush(ctx)
			switch {
			case tt.ok && err != nil:
				t.Fatalf("%v", err)
			case !tt.ok && err == nil:
				t.Fatal("produced without a valid TLS setup")
			case !tt.ok && !strings.Contains(err.Error(), tt.says):
				t.Fatalf("error does not say %q: %v", tt.says, err)
			}
			t.Logf("%s: %v", tt.name, err)
		})
	}
	// What the TLS listener took, read back through the plain one.
	out := k.ConsoleConsume("raw", 1, 30*time.Second)
	if len(out) != 1 || out[0] != "x" {
		t.Fatalf("raw topic: %q", out)
	}
}
