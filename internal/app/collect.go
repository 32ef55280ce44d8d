package app

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/furrow-io/furrow/internal/collector"
	"github.com/furrow-io/furrow/internal/pipeline"
	"github.com/furrow-io/furrow/internal/stream"
	"github.com/furrow-io/furrow/internal/stream/kafka"
)

// furrow collect: the collector answers once a payload is in the local
// raw log, as in furrow run; a forwarder per log (raw payloads, the
// collector's bad rows) produces what the log holds to its Kafka topic
// and moves the log's reader only once the brokers acknowledged it
// (acks=all), so the log keeps every payload Kafka does not hold yet,
// on disk: with the brokers down, trackers get 2xx while the log has
// room. The readers keep furrow run's names (enrich, load), so a data
// directory moved from one role to the other goes on where it was.

// isForwarder tells the health components of the Kafka forwarders,
// which, like destinations, degrade /sink-health but do not fail it.
func isForwarder(name string) bool { return strings.HasPrefix(name, "kafka/") }

func (a *App) openCollect() error {
	k := a.cfg.Streams.Kafka
	var err error
	if a.kafka, err = kafka.NewClient(k); err != nil {
		return err
	}
	key := kafka.RandomKey
	if k.RawPartitionKey == "ip" {
		key = kafka.IPKey
	}
	a.kafkaRaw = kafka.NewSink(a.kafka, k.Topics.Raw, key)
	a.kafkaBad = kafka.NewSink(a.kafka, k.Topics.RawBad, kafka.RandomKey)
	if a.sockListener, err = listenSocket(a.cfg.DataDir); err != nil {
		a.log.Warn("no local socket: metrics are not served", "err", err)
	} else {
		a.sockServer = &http.Server{ReadHeaderTimeout: 10 * time.Second}
	}
	col, err := collector.New(collector.Options{
		Config: a.cfg.Collector, Good: a.raw.Sink(), Bad: a.bad.Sink(),
		Name: "furrow-" + shortVersion() + "-kafka", Processor: a.proc, Logger: a.log, Registry: a.reg,
		Health:   func() error { return a.health.ErrOf(func(n string) bool { return !isForwarder(n) }) },
		Degraded: func() error { return a.health.ErrOf(isForwarder) },
	})
	if err != nil {
		return err
	}
	a.server = col.NewServer(func(ctx *fasthttp.RequestCtx) {
		if bytes.HasPrefix(ctx.Path(), []byte("/micro/")) {
			microOff(ctx)
			return
		}
		col.Handle(ctx)
	}, collector.DefaultServerOptions())
	a.listener, err = a.listenCollector(context.Background())
	return err
}

// collectStages are furrow collect's two forwarders.
func (a *App) collectStages(raw, bad stream.Source) []stage {
	fwdRaw := &pipeline.Forward{Source: raw, Sink: a.kafkaRaw, Logger: a.log, Health: a.health.Component("kafka/raw")}
	fwdBad := &pipeline.Forward{Source: bad, Sink: a.kafkaBad, Logger: a.log, Health: a.health.Component("kafka/raw_bad")}
	if a.policy != nil {
		fwdBad.Transform = a.pseudonymizeBad
	}
	return []stage{{"kafka/raw", fwdRaw}, {"kafka/raw_bad", fwdBad}}
}
