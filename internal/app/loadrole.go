package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/loader/duckdb"
	"github.com/furrow-io/furrow/internal/loader/files"
	"github.com/furrow-io/furrow/internal/loader/postgres"
	"github.com/furrow-io/furrow/internal/stream/kafka"
)

// furrow load: one consumer group per destination,
// <consumer_group>-load-<name>, on the enriched and bad topics. Each
// partition of each topic is loaded as its own stream: a batch holds one
// partition's records, and the destination stores, with them (in the
// transaction of DuckDB and Postgres, in the state object of files and
// S3), the offset after the batch under the key
// <name>@kafka/<topic>/<partition> (loader.Loader's position).
//
// A partition's records are held until its batch is due, as the
// destination loads best: Postgres at every poll; DuckDB when the batch
// ends its table on a row group boundary (loader.Wanter), after
// holdDelay, or when the partition is quiet, staging the lines on disk
// meanwhile (loader.Stager); files and S3 when the object is due
// (max_bytes or max_delay). The records held in memory stay under the
// destination's share of memory_limit: past it, every batch is loaded.
//
// Kafka's offsets are committed after each poll, up to the first record
// not yet stored: a hint for the next owner of the partition (after a
// rebalance or a restart after kill -9), which reads from there and
// skips the records the destination already holds, so each event is
// loaded once. Control records (a transaction's commit marker) are read
// too, so the committed offset passes them and the lag reaches 0 at
// rest. A partition taken away drops what it held: its next owner
// reads it again from the committed offset.

// LoadRoleMaxRecords bounds one poll of furrow load.
const LoadRoleMaxRecords = 50000

// holdDelay bounds how long DuckDB's batch of a partition waits for its
// row group boundary.
const holdDelay = 5 * time.Second

// kafkaLoad loads one destination from Kafka.
type kafkaLoad struct {
	a    *App
	d    config.Destination
	cl   *kgo.Client
	open func(ctx context.Context, key string) (loader.Loader, error)

	// budget bounds the bytes of records held in memory, all partitions
	// together; quietLoads loads a batch when its partition had nothing
	// in a poll; eachPoll loads every poll's records (Postgres).
	budget               int
	quietLoads, eachPoll bool

	noteLoad func(destination string, good, bad int)
	retrier  *loader.Retrier

	// mu keeps the loop's state from the rebalance callbacks, which drop
	// the partitions taken away.
	mu    sync.Mutex
	parts map[string]*partitionLoad // by key
}

type partitionLoad struct {
	key       string
	topic     string
	partition int32
	l         loader.Loader
	stored    int64 // the destination's position: offsets below it are loaded
	next      int64 // every offset below it is stored, skipped or a control record
	committed int64 // in Kafka

	// The batch held: Start -1 when none. A Stager's lines are staged
	// and b holds none of them.
	b          loader.Batch
	good       int // good lines in b, staged or not
	records    int // records in b
	bytes      int // bytes of b's lines in memory
	staged     int // bytes of b's lines a Stager staged
	since      time.Time
	seenInPoll bool
}

func (pl *partitionLoad) held() bool { return pl.b.Start >= 0 }

// commitAt is the offset the next owner of the partition starts from.
func (pl *partitionLoad) commitAt() int64 {
	if pl.held() {
		return pl.b.Start
	}
	return pl.next
}

func (a *App) openLoadRole(ctx context.Context) error {
	k := a.cfg.Streams.Kafka
	budget := Memory(a.cfg).DestinationBytes
	if budget == 0 { // a lone duckdb destination: the fused path's plan
		budget = int(min(max(Memory(a.cfg).GoHeap/3, 4<<20), 256<<20))
	}
	noteLoad, err := loader.NoteLoads(a.reg)
	if err != nil {
		return err
	}
	for _, d := range a.cfg.EffectiveDestinations() {
		kl := &kafkaLoad{a: a, d: d, parts: map[string]*partitionLoad{}, budget: budget, noteLoad: noteLoad}
		if kl.retrier, err = loader.NewRetrier(a.reg, d.Name, a.health.Component("destination/"+d.Name), a.log, PermanentRetryDelay); err != nil {
			return err
		}
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
			kl.quietLoads = true
		case d.Postgres != nil:
			pg := d.Postgres
			kl.open = func(ctx context.Context, key string) (loader.Loader, error) {
				return postgres.Open(ctx, postgres.Options{DSN: pg.DSN.Value(), Schema: pg.Schema, Name: key, Processor: a.proc, Logger: a.log.With("destination", d.Name)})
			}
			kl.eachPoll = true
		case d.Files != nil, d.S3 != nil:
			// One state object per partition (files.Options.Stream), and
			// the partition in each object's name.
			obj := d.ObjectSettings()
			openStore := objectStore(d)
			kl.open = func(ctx context.Context, key string) (loader.Loader, error) {
				st, err := openStore(ctx)
				if err != nil {
					return nil, err
				}
				return files.Open(ctx, files.Options{Store: st, Format: obj.Format, GoodPrefix: obj.GoodPrefix, BadPrefix: obj.BadPrefix,
					GoodPartition: obj.Partition, BadPartition: obj.BadPartition, MaxBytes: int64(obj.MaxBytes), MaxDelay: obj.MaxDelay,
					Processor: a.proc, Logger: a.log.With("destination", d.Name), Stream: key, Part: partOf(key)})
			}
		default:
			return fmt.Errorf("destination %s: furrow load does not load type %s from Kafka", d.Name, d.Type)
		}
		opts, err := kafka.ConsumerOpts(k, k.ConsumerGroup+"-load-"+d.Name, k.Topics.Enriched, k.Topics.Bad)
		if err != nil {
			return err
		}
		opts = append(opts, kgo.KeepControlRecords(),
			kgo.OnPartitionsRevoked(kl.drop), kgo.OnPartitionsLost(kl.drop))
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
	if a.sockListener, err = listenSocket(a.cfg.DataDir); err != nil {
		a.log.Warn("no local socket: furrow sql cannot query this furrow while it runs, and metrics are not served", "err", err)
	} else {
		if len(a.stores) > 0 {
			a.sockQ = a.stores[0]
		}
		a.sockServer = &http.Server{ReadHeaderTimeout: 10 * time.Second}
	}
	return nil
}

// partOf names a partition in object keys: "<topic>-<partition>" from
// its position key.
func partOf(key string) string {
	_, tp, _ := strings.Cut(key, "@kafka/")
	return strings.ReplaceAll(tp, "/", "-")
}

// drop forgets the partitions taken away from this member: what they
// held is neither stored nor committed, and their next owner reads it
// again. Their committed offsets are brought up to date first.
func (kl *kafkaLoad) drop(ctx context.Context, cl *kgo.Client, gone map[string][]int32) {
	kl.mu.Lock()
	defer kl.mu.Unlock()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	var dropped []*partitionLoad
	for topic, ps := range gone {
		for _, p := range ps {
			pl := kl.parts[loadKey(kl.d.Name, topic, p)]
			if pl == nil {
				continue
			}
			if at := pl.commitAt(); at > pl.committed {
				if offsets[topic] == nil {
					offsets[topic] = map[int32]kgo.EpochOffset{}
				}
				offsets[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: at}
			}
			dropped = append(dropped, pl)
		}
	}
	if len(offsets) > 0 {
		cl.CommitOffsetsSync(ctx, offsets, nil) // a hint only: best effort
	}
	for _, pl := range dropped {
		pl.l.Close(ctx) // drops what a Stager staged
		delete(kl.parts, pl.key)
	}
}

func loadKey(dest, topic string, partition int32) string {
	return fmt.Sprintf("%s@kafka/%s/%d", dest, topic, partition)
}

// run loads until ctx is done, then loads what it holds and returns.
func (kl *kafkaLoad) run(ctx context.Context) error {
	h := kl.a.health.Component("destination/" + kl.d.Name)
	log := kl.a.log.With("destination", kl.d.Name)
	for {
		// Rebalances wait while a poll's records are taken, so that a
		// partition is never loaded by two members at once.
		kl.cl.AllowRebalance()
		// At least once a second, so that held batches come due.
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := kl.cl.PollRecords(pctx, LoadRoleMaxRecords)
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return kl.finish(context.WithoutCancel(ctx))
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) {
				return // the poll's second passed
			}
			log.Error("kafka: reading failed", "topic", topic, "partition", p, "err", err)
			h.Fail(fmt.Errorf("kafka: reading %s/%d: %w", topic, p, err))
		})
		kl.mu.Lock()
		err := kl.step(ctx, fetches, false)
		kl.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return kl.finish(context.WithoutCancel(ctx))
			}
			return err
		}
	}
}

// finishTimeout bounds the loads of a graceful stop.
const finishTimeout = 30 * time.Second

// finish loads what is held, at a graceful stop; what it cannot load in
// finishTimeout is read again by the next start.
func (kl *kafkaLoad) finish(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	kl.mu.Lock()
	defer kl.mu.Unlock()
	if err := kl.step(ctx, kgo.Fetches{}, true); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// step takes one poll's records, loads the batches that are due (all,
// with all) and commits the offsets. Under mu.
func (kl *kafkaLoad) step(ctx context.Context, fetches kgo.Fetches, all bool) error {
	h := kl.a.health.Component("destination/" + kl.d.Name)
	for _, pl := range kl.parts {
		pl.seenInPoll = false
	}
	loaded := false
	var failed error
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if failed != nil || len(p.Records) == 0 {
			return
		}
		n, err := kl.take(ctx, p.Topic, p.Partition, p.Records)
		loaded = loaded || n > 0
		failed = err
	})
	if failed != nil {
		return failed
	}
	heldBytes := 0
	for _, pl := range kl.parts {
		heldBytes += pl.bytes
	}
	for _, pl := range kl.parts {
		if !pl.held() {
			continue
		}
		due := all || kl.eachPoll || heldBytes >= kl.budget || pl.staged >= duckDBBatchBytes ||
			(kl.quietLoads && (!pl.seenInPoll || time.Since(pl.since) >= holdDelay))
		if d, ok := pl.l.(interface {
			Due(rawBytes int, age time.Duration) bool
		}); ok && d.Due(pl.bytes, time.Since(pl.since)) {
			due = true
		}
		if !due {
			continue
		}
		if err := kl.flush(ctx, pl); err != nil {
			return err
		}
		loaded = true
	}
	if loaded {
		h.OK()
	}
	// A hint for the next owner of the partitions; the positions in the
	// destination are what counts.
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for _, pl := range kl.parts {
		if at := pl.commitAt(); at > pl.committed {
			if offsets[pl.topic] == nil {
				offsets[pl.topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[pl.topic][pl.partition] = kgo.EpochOffset{Epoch: -1, Offset: at}
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	var cerr error
	kl.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					cerr = err
					continue
				}
				if pl := kl.parts[loadKey(kl.d.Name, t.Topic, p.Partition)]; pl != nil {
					pl.committed = offsets[t.Topic][p.Partition].Offset
				}
			}
		}
	})
	if cerr != nil && ctx.Err() == nil {
		kl.a.log.Warn("kafka: offsets not committed; the next owner skips what the destination holds", "destination", kl.d.Name, "err", cerr)
	}
	return nil
}

// retry runs f until it succeeds or ctx is done, as the destination's
// runner does (loader.Retrier).
func (kl *kafkaLoad) retry(ctx context.Context, f func() error) error { return kl.retrier.Do(ctx, f) }

// take adds one partition's records to its batch, skipping those the
// destination holds and the control records, and loads the batch
// whenever it reaches what the destination wants (loader.Wanter). It
// returns how many batches it loaded.
func (kl *kafkaLoad) take(ctx context.Context, topic string, partition int32, recs []*kgo.Record) (int, error) {
	key := loadKey(kl.d.Name, topic, partition)
	pl := kl.parts[key]
	if pl == nil {
		pl = &partitionLoad{key: key, topic: topic, partition: partition, b: loader.Batch{Start: -1}}
		if err := kl.retry(ctx, func() (err error) { pl.l, err = kl.open(ctx, key); return err }); err != nil {
			return 0, err
		}
		kl.parts[key] = pl
	}
	pl.seenInPoll = true
	stager, _ := pl.l.(loader.Stager)
	wanter, _ := pl.l.(loader.Wanter)
	good := topic == kl.a.cfg.Streams.Kafka.Topics.Enriched
	if !pl.held() {
		// Asked before each batch: another member may have loaded the
		// partition since this one last did.
		if err := kl.retry(ctx, func() (err error) { pl.stored, err = pl.l.Position(ctx); return err }); err != nil {
			return 0, err
		}
	}
	want := 0
	if wanter != nil && good {
		want = wanter.Want()
	}
	loads, skipped := 0, 0
	// stage hands a Stager the lines taken so far.
	stage := func() error {
		if stager == nil || len(pl.b.Good)+len(pl.b.Bad) == 0 {
			return nil
		}
		err := kl.retry(ctx, func() error { return stager.Stage(ctx, pl.b.Good, pl.b.Bad) })
		pl.staged += pl.bytes
		clear(pl.b.Good)
		clear(pl.b.Bad)
		pl.b.Good, pl.b.Bad, pl.bytes = pl.b.Good[:0], pl.b.Bad[:0], 0
		return err
	}
	for _, r := range recs {
		switch {
		case pl.held():
			pl.b.End = r.Offset + 1 // a marker inside the batch too
			if r.Attrs.IsControl() {
				continue
			}
		case r.Attrs.IsControl() || r.Offset < pl.stored:
			if !r.Attrs.IsControl() {
				skipped++ // loaded before a crash or a rebalance
			}
			pl.next = r.Offset + 1
			continue
		default:
			pl.b.Start, pl.b.End, pl.since, pl.good = r.Offset, r.Offset+1, time.Now(), 0
		}
		pl.records++
		if good {
			pl.b.Good = append(pl.b.Good, r.Value)
			pl.good++
		} else {
			pl.b.Bad = append(pl.b.Bad, r.Value)
		}
		pl.bytes += len(r.Value)
		if want > 0 && pl.good >= want {
			if err := stage(); err != nil {
				return loads, err
			}
			if err := kl.flush(ctx, pl); err != nil {
				return loads, err
			}
			loads++
			want = wanter.Want()
		}
	}
	if skipped > 0 {
		kl.a.log.Info("kafka: records the destination holds already, skipped", "destination", kl.d.Name, "topic", topic, "partition", partition, "records", skipped)
	}
	return loads, stage()
}

// flush loads pl's batch, retrying outages until ctx is done.
func (kl *kafkaLoad) flush(ctx context.Context, pl *partitionLoad) error {
	if err := kl.retry(ctx, func() error { return pl.l.Load(ctx, pl.b) }); err != nil {
		return err
	}
	if pl.topic == kl.a.cfg.Streams.Kafka.Topics.Enriched {
		kl.noteLoad(kl.d.Name, pl.records, 0)
	} else {
		kl.noteLoad(kl.d.Name, 0, pl.records)
	}
	clear(pl.b.Good)
	clear(pl.b.Bad)
	pl.stored, pl.next = pl.b.End, pl.b.End
	pl.b = loader.Batch{Start: -1, Good: pl.b.Good[:0], Bad: pl.b.Bad[:0]}
	pl.bytes, pl.staged, pl.good, pl.records = 0, 0, 0, 0
	return nil
}

// close closes the partitions' loaders and leaves the group.
func (kl *kafkaLoad) close(ctx context.Context) {
	kl.cl.AllowRebalance() // leaving the group is a rebalance
	kl.cl.Close()          // drops the partitions (drop)
	kl.mu.Lock()
	defer kl.mu.Unlock()
	for _, pl := range kl.parts {
		pl.l.Close(ctx)
	}
}

// runLoadRole loads every destination until ctx is done, then finishes
// the loads in progress and closes.
func (a *App) runLoadRole(ctx context.Context) error {
	go a.serveSocket(ctx)
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
