package app

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/pipeline"
	"github.com/furrow-io/furrow/internal/stream/kafka"
)

// furrow enrich: a member of the consumer group <consumer_group>-enrich
// on the raw topic; it enriches what it reads and produces enriched TSV
// lines and bad rows to their topics, and commits the raw topic's
// offsets only once the brokers acknowledged every output of a batch (see
// kafka.Source, kafka.Sink). Two or more processes share the topic's
// partitions.

// EnrichRoleFlushRecords is how many outputs furrow enrich produces
// before it waits for the brokers and commits.
const EnrichRoleFlushRecords = 5000

func (a *App) openEnrichRole(ctx context.Context) (*App, error) {
	cfg, k := a.cfg, a.cfg.Streams.Kafka
	var err error
	if a.policy, err = Policy(cfg, a.log); err != nil {
		return nil, err
	}
	if err := a.openEnricher(ctx, false); err != nil {
		return nil, err
	}
	if a.kafka, err = kafka.NewClient(k, a.log); err != nil {
		return nil, err
	}
	key := kafka.RandomKey
	if k.EnrichedPartitionKey != "" {
		i, _ := event.Index(k.EnrichedPartitionKey)
		key = kafka.FieldKey(i)
	}
	a.kafkaGood = kafka.NewSink(a.kafka, k.Topics.Enriched, key)
	if len(k.EnrichedHeaders) > 0 {
		idx := make([]int, len(k.EnrichedHeaders))
		for i, h := range k.EnrichedHeaders {
			idx[i], _ = event.Index(h)
		}
		a.kafkaGood.Headers = kafka.FieldHeaders(k.EnrichedHeaders, idx)
	}
	a.kafkaGoodOut = a.kafkaGood
	if k.Topics.JSON != "" {
		// Keyed like the enriched topic, so one user's events keep their
		// order in both.
		a.kafkaGoodOut = kafka.Tee{a.kafkaGood, kafka.JSONSink{S: kafka.NewSink(a.kafka, k.Topics.JSON, nil), Key: key, Log: a.log}}
	}
	a.kafkaBadOut = kafka.NewSink(a.kafka, k.Topics.Bad, kafka.RandomKey)
	a.kafkaBadOut.MaxBytes = int(k.MaxRecordBytes)
	if a.kafkaSrc, err = kafka.NewSource(k, k.ConsumerGroup+"-enrich", k.Topics.Raw, cfg.Enrich.BatchSize, a.log); err != nil {
		return nil, err
	}
	if err := a.reg.Register(kafka.NewLagCollector(a.kafkaSrc.Client(), k.ConsumerGroup+"-enrich")); err != nil {
		return nil, err
	}
	if a.sockListener, err = listenSocket(cfg.DataDir); err != nil {
		a.log.Warn("no local socket: metrics are not served", "err", err)
	} else {
		a.sockServer = &http.Server{Handler: socketHandler(nil, cfg.SQL, a.reg, a.log), ReadHeaderTimeout: 10 * time.Second}
	}
	return a, nil
}

// runEnrichRole enriches until ctx is done, then stops reading, stores
// and commits what it read (for up to DrainTimeout and StopMargin), and
// closes.
func (a *App) runEnrichRole(ctx context.Context) error {
	enr := &pipeline.Enrich{Source: a.kafkaSrc, Enricher: a.enricher, Good: a.kafkaGoodOut, Bad: a.kafkaBadOut,
		Workers: a.cfg.Enrich.Workers, Logger: a.log, Registry: a.reg, Health: a.health.Component("enrich"),
		FlushRecords: EnrichRoleFlushRecords, FlushInterval: time.Second}
	if a.stdout != nil {
		enr.Observers = append(enr.Observers, a.stdout)
	}
	hard, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	done := make(chan error, 1)
	go func() { done <- enr.Run(hard) }()
	go a.serveSocket()
	k := a.cfg.Streams.Kafka
	a.log.Info("furrow is running", "role", "enrich", "brokers", k.Brokers, "from", k.Topics.Raw, "group", k.ConsumerGroup+"-enrich",
		"to", k.Topics.Enriched+", "+k.Topics.Bad)
	var err error
	select {
	case err = <-done:
		if err == nil {
			err = errors.New("the enricher stopped")
		}
	case <-ctx.Done():
		a.log.Info("furrow is stopping")
		enr.Stop()
		t := time.NewTimer(a.cfg.DrainTimeout + StopMargin)
		defer t.Stop()
		select {
		case err = <-done:
		case <-t.C:
			a.log.Warn("stopping: storing what was read is taking too long; interrupting it (those records are read again at the next start)")
			abort()
			err = <-done
		}
	}
	return errors.Join(err, a.closeAll(hard))
}
