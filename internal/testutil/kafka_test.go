package testutil

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestKafka(t *testing.T) {
	start := time.Now()
	k := Kafka(t)
	t.Logf("Kafka broker on %s ready in %v", k.Addr(), time.Since(start).Round(time.Millisecond))

	k.CreateTopic("events", 3)
	var want []string
	for i := range 100 {
		want = append(want, fmt.Sprintf("event-%03d", i))
	}
	produce(t, k, "events", want)

	got := consume(t, k, "events", len(want))
	if !sameSet(got, want) {
		t.Fatalf("franz-go read back %d records %v, want the %d produced", len(got), got, len(want))
	}
	start = time.Now()
	console := k.ConsoleConsume("events", len(want), 20*time.Second)
	t.Logf("ConsoleConsume of %d records took %v", len(want), time.Since(start).Round(time.Millisecond))
	if !sameSet(console, want) {
		t.Fatalf("console consumer read %d records %v, want the %d produced", len(console), console, len(want))
	}

	// Acknowledged records survive a crash (acks=all on one node: the
	// broker's log is in the page cache, which a SIGKILL keeps).
	var more []string
	for i := range 50 {
		more = append(more, fmt.Sprintf("before-kill-%03d", i))
	}
	produce(t, k, "events", more)
	want = append(want, more...)
	k.Kill()
	start = time.Now()
	k.Start()
	t.Logf("restart after Kill ready in %v", time.Since(start).Round(time.Millisecond))
	if got := consume(t, k, "events", len(want)); !sameSet(got, want) {
		t.Fatalf("after Kill and Start read %d records, want the %d acknowledged: %v", len(got), len(want), got)
	}

	// A controlled shutdown and restart, and the broker takes writes again.
	k.Stop()
	start = time.Now()
	k.Start()
	t.Logf("restart after Stop ready in %v", time.Since(start).Round(time.Millisecond))
	produce(t, k, "events", []string{"after-stop"})
	want = append(want, "after-stop")
	if got := consume(t, k, "events", len(want)); !sameSet(got, want) {
		t.Fatalf("after Stop and Start read %d records, want %d: %v", len(got), len(want), got)
	}

	// The console producer's records, read with franz-go, in order (one
	// partition).
	k.CreateTopic("console", 1)
	lines := []string{"one", `{"two":2}`, "three with spaces", "é"}
	k.ConsoleProduce("console", lines)
	if got := consume(t, k, "console", len(lines)); !slices.Equal(got, lines) {
		t.Fatalf("franz-go read %q from the console producer, want %q", got, lines)
	}
}

func TestKafkaLibsMissing(t *testing.T) {
	t.Setenv(KafkaLibsEnv, t.TempDir())
	_, err := kafkaLibs()
	if err == nil || !strings.Contains(err.Error(), "test/kafka/fetch.sh") {
		t.Fatalf("kafkaLibs without jars: %v, want an error saying to run test/kafka/fetch.sh", err)
	}
}

func TestKafkaToolError(t *testing.T) {
	timeout := "[2026-01-01 00:00:00,000] ERROR Error processing message, terminating consumer process:  (org.apache.kafka.tools.consumer.ConsoleConsumer)\n" +
		"org.apache.kafka.common.errors.TimeoutException\nProcessed a total of 5 messages\n"
	if err := toolError(timeout); err != nil {
		t.Errorf("the console consumer's timeout taken for an error: %v", err)
	}
	other := "[2026-01-01 00:00:00,000] ERROR Error when sending message to topic t (org.apache.kafka.clients.producer.internals.ErrorLoggingCallback)\n"
	if err := toolError(other); err == nil {
		t.Error("a producer error not reported")
	}
}

// produce writes values to topic with an idempotent franz-go producer
// waiting for acks from all in-sync replicas.
func produce(t *testing.T, k *KafkaBroker, topic string, values []string) {
	t.Helper()
	cl := newClient(t, k, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for _, v := range values {
		recs = append(recs, kgo.StringRecord(v))
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records to %s: %v", len(values), topic, err)
	}
}

// consume reads n records of topic from the start with a new franz-go
// client and returns their values, partition by partition in offset
// order; it fails the test if fewer come within 30 s or more than n are
// there.
func consume(t *testing.T, k *KafkaBroker, topic string, n int) []string {
	t.Helper()
	cl := newClient(t, k, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []string
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s within 30 s: %v", len(got), n, topic, got)
		}
		if err := fs.Err(); err != nil {
			t.Fatalf("fetch %s: %v", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if len(got) > n {
		t.Fatalf("read %d records of %s, want %d: %v", len(got), topic, n, got)
	}
	return got
}

// newClient is a franz-go client of the broker (idempotent producing is
// its default).
func newClient(t *testing.T, k *KafkaBroker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Addr())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func sameSet(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}
