package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/pipeline"
	"github.com/furrow-io/furrow/internal/stats"
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

func (a *App) openEnrichRole(ctx context.Context) error {
	cfg, k := a.cfg, a.cfg.Streams.Kafka
	var err error
	if a.policy, err = Policy(cfg, a.log); err != nil {
		return err
	}
	if err := a.openEnricher(ctx, false); err != nil {
		return err
	}
	if a.kafka, err = kafka.NewClient(k); err != nil {
		return err
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
		a.kafkaJSON = &kafka.JSONSink{S: kafka.NewSink(a.kafka, k.Topics.JSON, nil), Key: key, Log: a.log}
		a.kafkaGoodOut = kafka.Tee{a.kafkaGood, *a.kafkaJSON}
	}
	a.kafkaBadOut = kafka.NewSink(a.kafka, k.Topics.Bad, kafka.RandomKey)
	a.kafkaBadOut.MaxBytes = int(k.MaxRecordBytes)
	group := k.ConsumerGroup + "-enrich"
	var lagClient *kgo.Client
	if k.ExactlyOnce {
		// The transactional id lives in the data directory, so the
		// next start of this process fences what a crash left open.
		id, err := logID(cfg.DataDir)
		if err != nil {
			return err
		}
		a.txnID = "furrow-enrich-" + id
		if a.kafkaTxn, err = kafka.NewTransactSession(k, group, k.Topics.Raw, a.txnID); err != nil {
			return err
		}
		// Not the session's client: a failed session is replaced (see
		// renewSession).
		lagClient = a.kafka
	} else {
		if a.kafkaSrc, err = kafka.NewSource(k, group, k.Topics.Raw, cfg.Enrich.BatchSize, a.log); err != nil {
			return err
		}
		lagClient = a.kafkaSrc.Client()
	}
	if err := a.reg.Register(kafka.NewLagCollector(lagClient, group)); err != nil {
		return err
	}
	if a.sockListener, err = listenSocket(cfg.DataDir); err != nil {
		a.log.Warn("no local socket: metrics are not served", "err", err)
	} else {
		a.sockServer = &http.Server{ReadHeaderTimeout: 10 * time.Second}
	}
	return nil
}

// runEnrichRole enriches until ctx is done, then stops reading, stores
// and commits what it read (for up to DrainTimeout and StopMargin), and
// closes.
func (a *App) runEnrichRole(ctx context.Context) error {
	if a.kafkaTxn != nil {
		return a.runEnrichTransactions(ctx)
	}
	enr := &pipeline.Enrich{Source: a.kafkaSrc, Enricher: a.enricher, Good: a.kafkaGoodOut, Bad: a.kafkaBadOut,
		Workers: a.cfg.Enrich.Workers, Logger: a.log, Registry: a.reg, Health: a.health.Component("enrich"),
		FlushRecords: EnrichRoleFlushRecords, FlushInterval: time.Second, Stats: a.stats}
	if a.stdout != nil {
		enr.Observers = append(enr.Observers, a.stdout)
	}
	hard, abort := context.WithCancel(context.WithoutCancel(ctx))
	defer abort()
	done := make(chan error, 1)
	go func() { done <- enr.Run(hard) }()
	go a.serveSocket(ctx)
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
		a.draining.Store(true)
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

// runEnrichTransactions is furrow enrich with streams.kafka.exactly_once:
// each poll's outputs are produced, and the raw topic's offsets
// committed, in one transaction. An aborted transaction (a rebalance
// while it ran) rewinds to the committed offsets, so its records are
// enriched again and only the committed outputs are seen by
// read_committed consumers (furrow load). An error ending a transaction
// leaves the producer unusable: furrow enrich stops with it, and its next
// start, reusing the transactional id kept in its data directory, fences
// the transaction it left open.
func (a *App) runEnrichTransactions(ctx context.Context) error {
	k := a.cfg.Streams.Kafka
	h := a.health.Component("enrich")
	go a.serveSocket(ctx)
	a.log.Info("furrow is running", "role", "enrich", "brokers", k.Brokers, "from", k.Topics.Raw, "group", k.ConsumerGroup+"-enrich",
		"to", k.Topics.Enriched+", "+k.Topics.Bad, "exactly_once", true)
	sess := a.kafkaTxn
	var runErr error
	for ctx.Err() == nil {
		fetches := sess.PollRecords(ctx, a.cfg.Enrich.BatchSize)
		if ctx.Err() != nil {
			break
		}
		if fetches.IsClientClosed() {
			runErr = errors.New("kafka: the consumer is closed")
			break
		}
		fetches.EachError(func(topic string, p int32, err error) {
			h.Fail(fmt.Errorf("kafka: reading %s/%d: %w", topic, p, err))
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			if sess, runErr = a.renewSession(ctx, sess, fmt.Errorf("kafka: beginning a transaction: %w", err)); runErr != nil {
				break
			}
			continue
		}
		values := make([][]byte, len(recs))
		for i, r := range recs {
			values[i] = r.Value
		}
		good, bad := pipeline.Process(ctx, a.enricher, a.enrichWorkers(), values)
		var produceErr atomic.Pointer[error]
		promise := func(_ *kgo.Record, err error) {
			if err != nil {
				produceErr.CompareAndSwap(nil, &err)
			}
		}
		for _, g := range good {
			sess.Produce(context.Background(), a.kafkaGood.Record(g.TSV), promise)
			if a.kafkaJSON != nil {
				if r := a.kafkaJSON.Record(g.TSV); r != nil {
					sess.Produce(context.Background(), r, promise)
				}
			}
		}
		for _, b := range bad {
			sess.Produce(context.Background(), a.kafkaBadOut.Record(b), promise)
		}
		committed, err := sess.End(context.WithoutCancel(ctx), kgo.TryCommit)
		if err != nil {
			if sess, runErr = a.renewSession(ctx, sess, fmt.Errorf("kafka: ending a transaction: %w", err)); runErr != nil {
				break
			}
			continue
		}
		if !committed {
			if p := produceErr.Load(); p != nil {
				h.Fail(fmt.Errorf("kafka: producing failed, transaction aborted; the batch is read again: %w", *p))
			} else {
				a.log.Info("kafka: transaction aborted (the group rebalanced); its records are read again", "records", len(recs))
			}
			continue
		}
		a.stats.Add(stats.Summarize(good, bad))
		a.txnFailures = 0
		h.OK()
	}
	if runErr != nil {
		a.log.Error("furrow enrich stopped", "err", runErr)
		h.Stop(runErr)
	}
	return errors.Join(runErr, a.closeAll(context.WithoutCancel(ctx)))
}

// renewSession replaces a transactional session that failed (the
// brokers were unreachable past the client's retries, say): it closes
// it, waits a little longer each time, and opens a new one with the same
// transactional id, which fences what the failed one left open; the batch
// is read again from the committed offsets. Another process fencing this
// one (the same data directory twice) is permanent: furrow enrich stops.
func (a *App) renewSession(ctx context.Context, old *kgo.GroupTransactSession, cause error) (*kgo.GroupTransactSession, error) {
	if errors.Is(cause, kerr.ProducerFenced) || errors.Is(cause, kerr.TransactionalIDAuthorizationFailed) {
		return old, fmt.Errorf("%w (another furrow enrich runs with this transactional id %s: give each its own data_dir)", cause, a.txnID)
	}
	h := a.health.Component("enrich")
	h.Fail(cause)
	a.txnFailures++
	wait := min(time.Duration(a.txnFailures)*time.Second, 10*time.Second)
	a.log.Warn("kafka: the transaction failed; furrow enrich opens a new session and reads the batch again", "err", cause, "in", wait.String())
	closed := make(chan struct{})
	go func() { old.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second): // leaving the group waits for the brokers
	}
	select {
	case <-ctx.Done():
		return old, nil
	case <-time.After(wait):
	}
	k := a.cfg.Streams.Kafka
	sess, err := kafka.NewTransactSession(k, k.ConsumerGroup+"-enrich", k.Topics.Raw, a.txnID)
	if err != nil {
		return old, err
	}
	a.kafkaTxn = sess
	return sess, nil
}

// enrichWorkers is enrich.workers, or half of GOMAXPROCS (at least one), as
// pipeline.Enrich counts them.
func (a *App) enrichWorkers() int {
	if w := a.cfg.Enrich.Workers; w > 0 {
		return w
	}
	return max(runtime.GOMAXPROCS(0)/2, 1)
}
