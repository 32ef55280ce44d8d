package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/loader/duckdb"
	"github.com/furrow-io/furrow/internal/loader/postgres"
	"github.com/furrow-io/furrow/internal/stream/kafka"
)

// furrow load: one consumer group per destination,
// <consumer_group>-load-<name>, on the enriched and bad topics. Each
// partition of each topic is loaded as its own stream: a batch holds one
// partition's records, and the destination commits, in the transaction
// that stores them, the offset after the batch under the key
// <name>@kafka/<topic>/<partition> (loader.Loader's position). Kafka's
// offsets are committed after the load, as a hint: a member that takes a
// partition over (a rebalance, a restart after kill -9) reads from the
// committed offset and skips the records the destination already holds,
// so each event is loaded once into DuckDB and Postgres.

// LoadRoleMaxRecords bounds one poll of furrow load.
const LoadRoleMaxRecords = 50000

// kafkaLoad loads one destination from Kafka.
type kafkaLoad struct {
	a    *App
	d    config.Destination
	cl   *kgo.Client
	open func(ctx context.Context, key string) (loader.Loader, error)

	parts map[string]*partitionLoad // by key
}

type partitionLoad struct {
	l      loader.Loader
	stored int64 // the destination's position: offsets below it are loaded
}

func (a *App) openLoadRole(ctx context.Context) error {
	k := a.cfg.Streams.Kafka
	for _, d := range a.cfg.EffectiveDestinations() {
		kl := &kafkaLoad{a: a, d: d, parts: map[string]*partitionLoad{}}
		switch {
		case d.DuckDB != nil:
			var reg prometheus.Registerer
			if len(a.stores) == 0 {
				reg = a.reg
			}
			// Not Trusted: any enricher may have written the topic, so
			// every line is checked before DuckDB sees it.
			st, err := duckdb.Open(ctx, duckdb.Options{Path: d.DuckDB.Path, Schema: d.DuckDB.Schema, Threads: a.cfg.DuckDB.Threads, Nice: a.cfg.DuckDB.Nice,
				MemoryLimit: Memory(a.cfg).DuckDB, RowGroupRows: Memory(a.cfg).RowGroupRows, Processor: a.proc, Logger: a.log.With("destination", d.Name), Registry: reg})
			if err != nil {
				return fmt.Errorf("destination %s: %w", d.Name, err)
			}
			a.stores = append(a.stores, st)
			kl.open = func(_ context.Context, key string) (loader.Loader, error) { return st.Loader(key), nil }
		case d.Postgres != nil:
			pg := d.Postgres
			kl.open = func(ctx context.Context, key string) (loader.Loader, error) {
				return postgres.Open(ctx, postgres.Options{DSN: pg.DSN.Value(), Schema: pg.Schema, Name: key, Processor: a.proc, Logger: a.log.With("destination", d.Name)})
			}
		default:
			return fmt.Errorf("destination %s: furrow load does not load type %s from Kafka yet (duckdb and postgres only)", d.Name, d.Type)
		}
		opts, err := kafka.ConsumerOpts(k, k.ConsumerGroup+"-load-"+d.Name, k.Topics.Enriched, k.Topics.Bad)
		if err != nil {
			return err
		}
		if kl.cl, err = kgo.NewClient(opts...); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		a.kafkaLoads = append(a.kafkaLoads, kl)
	}
	if len(a.kafkaLoads) == 0 {
		return errors.New("furrow load: no destination to load (duckdb.enabled is false and destinations is empty)")
	}
	groups := make([]string, len(a.kafkaLoads))
	for i, kl := range a.kafkaLoads {
		groups[i] = k.ConsumerGroup + "-load-" + kl.d.Name
	}
	if err := a.reg.Register(kafka.NewLagCollector(a.kafkaLoads[0].cl, groups...)); err != nil {
		return err
	}
	var err error
	if a.sockListener, err = listenSocket(a.cfg.DataDir); err != nil {
		a.log.Warn("no local socket: furrow sql cannot query this furrow while it runs, and metrics are not served", "err", err)
	} else {
		var q querier
		if len(a.stores) > 0 {
			q = a.stores[0]
		}
		a.sockServer = &http.Server{Handler: socketHandler(q, a.cfg.SQL, a.reg, a.log), ReadHeaderTimeout: 10 * time.Second}
	}
	return nil
}

// run loads until ctx is done.
func (kl *kafkaLoad) run(ctx context.Context) error {
	h := kl.a.health.Component("destination/" + kl.d.Name)
	log := kl.a.log.With("destination", kl.d.Name)
	for {
		// Rebalances wait while a poll's records are loaded, so that a
		// partition is never loaded by two members at once.
		kl.cl.AllowRebalance()
		// At least once a second, so that a position that moved without
		// records (past a transaction's marker) is committed too.
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := kl.cl.PollRecords(pctx, LoadRoleMaxRecords)
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) {
				return // the poll's second passed
			}
			log.Error("kafka: reading failed", "topic", topic, "partition", p, "err", err)
			h.Fail(fmt.Errorf("kafka: reading %s/%d: %w", topic, p, err))
		})
		loaded := false
		var failed error
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if failed != nil || len(p.Records) == 0 {
				return
			}
			if err := kl.load(ctx, p.Topic, p.Partition, p.Records); err != nil {
				failed = err
				return
			}
			loaded = true
		})
		if failed != nil {
			if ctx.Err() != nil {
				return nil
			}
			return failed
		}
		if loaded {
			h.OK()
		}
		// A hint for the next owner of the partitions; the positions in
		// the destination are what counts. The client's position, not
		// the last record's offset: it is past the markers a
		// transactional producer writes, so the lag reaches 0.
		if err := kl.cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			log.Warn("kafka: offsets not committed; the next owner skips what the destination holds", "err", err)
		}
	}
}

// load stores one partition's records, skipping those the destination
// holds, retrying outages until ctx is done.
func (kl *kafkaLoad) load(ctx context.Context, topic string, partition int32, recs []*kgo.Record) error {
	key := fmt.Sprintf("%s@kafka/%s/%d", kl.d.Name, topic, partition)
	pl := kl.parts[key]
	h := kl.a.health.Component("destination/" + kl.d.Name)
	retry := func(f func() error) error {
		delay := 100 * time.Millisecond
		for {
			err := f()
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			wait := delay
			if !loader.IsRetryable(err) {
				wait = PermanentRetryDelay
				kl.a.log.Error("destination refused: fix its configuration or permissions; furrow tries again", "destination", kl.d.Name, "err", err, "in", wait.String())
			}
			h.Fail(err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			delay = min(2*delay, 5*time.Second)
		}
	}
	if pl == nil {
		pl = &partitionLoad{}
		if err := retry(func() (err error) { pl.l, err = kl.open(ctx, key); return err }); err != nil {
			return err
		}
		kl.parts[key] = pl
	}
	// Asked every time: another member may have loaded the partition
	// since this one last did.
	if err := retry(func() (err error) { pl.stored, err = pl.l.Position(ctx); return err }); err != nil {
		return err
	}
	var b loader.Batch
	b.Start = -1
	skipped := 0
	for _, r := range recs {
		if r.Offset < pl.stored {
			skipped++ // loaded before a crash or a rebalance
			continue
		}
		if b.Start < 0 {
			b.Start = r.Offset
		}
		if topic == kl.a.cfg.Streams.Kafka.Topics.Enriched {
			b.Good = append(b.Good, r.Value)
		} else {
			b.Bad = append(b.Bad, r.Value)
		}
	}
	if skipped > 0 {
		kl.a.log.Info("kafka: records the destination holds already, skipped", "destination", kl.d.Name, "topic", topic, "partition", partition, "records", skipped)
	}
	if b.Start < 0 {
		return nil
	}
	b.End = recs[len(recs)-1].Offset + 1
	if err := retry(func() error { return pl.l.Load(ctx, b) }); err != nil {
		return err
	}
	pl.stored = b.End
	return nil
}

// close closes the partitions' loaders and leaves the group.
func (kl *kafkaLoad) close(ctx context.Context) {
	for _, pl := range kl.parts {
		pl.l.Close(ctx)
	}
	kl.cl.AllowRebalance() // leaving the group is a rebalance
	kl.cl.Close()
}

// runLoadRole loads every destination until ctx is done, then finishes
// the loads in progress and closes.
func (a *App) runLoadRole(ctx context.Context) error {
	go a.serveSocket()
	k := a.cfg.Streams.Kafka
	a.log.Info("furrow is running", "role", "load", "brokers", k.Brokers, "from", k.Topics.Enriched+", "+k.Topics.Bad, "destinations", destinationNames(a.cfg))
	var wg sync.WaitGroup
	errs := make(chan error, len(a.kafkaLoads))
	for _, kl := range a.kafkaLoads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := kl.run(ctx); err != nil {
				errs <- fmt.Errorf("destination %s: %w", kl.d.Name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	for _, kl := range a.kafkaLoads {
		kl.close(context.WithoutCancel(ctx))
	}
	return errors.Join(append(all, a.closeAll(context.WithoutCancel(ctx)))...)
}
