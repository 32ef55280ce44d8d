package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/loader/duckdb"
	"github.com/furrow-io/furrow/internal/loader/files"
	"github.com/furrow-io/furrow/internal/loader/postgres"
	"github.com/furrow-io/furrow/internal/wal"
)

// Destinations.
//
// With no destinations list (or a list of one duckdb destination) furrow
// loads as it always has: the enricher writes straight into DuckDB, in
// row groups, and acknowledges the raw log once they are committed (the
// fused path: no second log to write, which the GET load test keeps
// measuring). Each load holds the raw log's position, so that a crash
// between DuckDB's commit and the raw log's loads nothing twice (see
// openMarked).
//
// Any other list puts the enriched log (data_dir/log/enriched) between
// the enricher and the destinations: the enricher, and the stage that
// forwards the collector's bad rows, write their outputs there in frames
// (loader.Enriched), and each destination has its own reader and runner
// (loader.Runner), so each loads at its own pace and one that is down
// holds back only itself while its backlog waits on disk.

// duckDBBatchBytes bounds the enriched log bytes of one batch of a duckdb
// destination, which its loader stages on disk: a row group of enriched
// POST events is about 130 MB.
const duckDBBatchBytes = 512 << 20

// PermanentRetryDelay is how long a destination that refused a load
// (wrong password, missing bucket or permission) waits before it tries
// again: the refusal is logged at error level, counted, and shown by
// /sink-health and the health metric, and the other destinations and
// the collector go on.
const PermanentRetryDelay = time.Minute

// fusedDuckDB reports whether the destinations are the fused path's:
// none, or one duckdb destination, which the enricher loads directly
// (duckdb.Marked).
func fusedDuckDB(cfg config.Config) bool {
	ds := cfg.EffectiveDestinations()
	return len(ds) == 0 || (len(ds) == 1 && ds[0].DuckDB != nil)
}

// destination is one destination of the enriched log mode.
type destination struct {
	d      config.Destination
	runner *loader.Runner
}

// openDestinations opens the enriched log and builds one runner per
// destination. DuckDB files are opened here (a local file that cannot
// be opened is a configuration error); the other destinations are
// reached by their runners, which retry while they are unreachable.
func (a *App) openDestinations(ctx context.Context, opts wal.Options) error {
	opts = enrichedOptions(opts)
	var err error
	if a.enrichedLog, err = wal.Open(opts); err != nil {
		return err
	}
	for _, d := range a.enrichedLog.Repairs() {
		if err := a.reportDamage("enriched")(d); err != nil {
			return err
		}
	}
	a.health.Check("log/enriched", a.enrichedLog.Health)
	var last map[string]int64
	if a.enriched, last, err = loader.OpenEnriched(ctx, a.enrichedLog); err != nil {
		return err
	}
	// A frame written just before a stop whose upstream commit was lost:
	// its batches are in the enriched log already.
	for _, up := range []struct {
		source, reader string
		log            *wal.Log
	}{{"raw", "enrich", a.raw}, {"collector-bad", "load", a.bad}} {
		if err := moveReader(up.log, up.reader, last[up.source]); err != nil {
			return fmt.Errorf("log/%s: %w", up.source, err)
		}
	}
	// Positions are the enriched log's: a destination stores them with
	// the log's id, so that a data directory started afresh does not
	// resume from positions of the one it replaced.
	id, err := logID(opts.Dir)
	if err != nil {
		return fmt.Errorf("log/enriched: %w", err)
	}
	budget := Memory(a.cfg).DestinationBytes
	busy := func() bool { return a.raw.Lag("enrich") > 0 || a.bad.Lag("load") > 0 }
	// A destination taken out of the configuration would hold the
	// enriched log's segments forever: its place is dropped, loudly.
	configured := map[string]bool{}
	for _, d := range a.cfg.EffectiveDestinations() {
		configured[loader.ReaderName(d.Name)] = true
	}
	for _, name := range a.enrichedLog.Readers() {
		if strings.HasPrefix(name, loader.ReaderName("")) && !configured[name] {
			a.log.Warn("a destination is no longer configured: its place in the enriched log is dropped, so that the log does not keep its backlog; put it back and it starts from the oldest event still in the log",
				"destination", strings.TrimPrefix(name, loader.ReaderName("")), "bytes_not_loaded", a.enrichedLog.Lag(name))
			if err := a.enrichedLog.RemoveReader(name); err != nil {
				return fmt.Errorf("log/enriched: dropping reader %s: %w", name, err)
			}
		}
	}
	for _, d := range a.cfg.EffectiveDestinations() {
		r := &loader.Runner{Name: d.Name, Log: a.enrichedLog, PermanentRetryDelay: PermanentRetryDelay,
			Processor: a.proc, Health: a.health.Component("destination/" + d.Name), Logger: a.log, Registry: a.reg, Busy: busy}
		switch {
		case d.DuckDB != nil:
			var reg prometheus.Registerer
			if len(a.stores) == 0 {
				reg = a.reg // the store's metrics have no destination label: the first store's only
			}
			st, err := duckdb.Open(ctx, duckdb.Options{Path: d.DuckDB.Path, Schema: d.DuckDB.Schema, Threads: a.cfg.DuckDB.Threads, Nice: a.cfg.DuckDB.Nice,
				MemoryLimit: Memory(a.cfg).DuckDB, RowGroupRows: Memory(a.cfg).RowGroupRows, Trusted: true, Processor: a.proc, Logger: a.log.With("destination", d.Name), Registry: reg})
			if err != nil {
				return fmt.Errorf("destination %s: %w", d.Name, err)
			}
			a.stores = append(a.stores, st)
			r.Loader = st.Loader(d.Name + "@" + id)
			// Under traffic, batches of the events that end the table on
			// a row group boundary (loader.Wanter, see
			// duckdb.PendingTable); when quiet, within IdleDelay. The
			// loader stages each read on disk (loader.Stager), so a
			// batch is bounded by disk rather than memory: MaxBytes only
			// stops a batch of huge lines from growing without end.
			r.MaxRecords, r.MaxBytes, r.MaxDelay, r.IdleDelay = 2*st.RowGroupRows(), duckDBBatchBytes, 5*time.Second, 50*time.Millisecond
		case d.Postgres != nil:
			o := postgres.Options{DSN: d.Postgres.DSN.Value(), Schema: d.Postgres.Schema, Name: d.Name + "@" + id, Processor: a.proc, Logger: a.log.With("destination", d.Name)}
			r.Open = func(ctx context.Context) (loader.Loader, error) { return postgres.Open(ctx, o) }
			r.MaxRecords, r.MaxBytes, r.MaxDelay, r.IdleDelay = 50000, min(budget, 64<<20), 5*time.Second, 50*time.Millisecond
		case d.Files != nil, d.S3 != nil:
			obj := d.ObjectSettings()
			o := files.Options{Format: obj.Format, GoodPrefix: obj.GoodPrefix, BadPrefix: obj.BadPrefix,
				GoodPartition: obj.Partition, BadPartition: obj.BadPartition, MaxBytes: int64(obj.MaxBytes), MaxDelay: obj.MaxDelay,
				Trusted: true, Processor: a.proc, Logger: a.log.With("destination", d.Name), Stream: id}
			open := objectStore(d)
			r.Open = func(ctx context.Context) (loader.Loader, error) {
				st, err := open(ctx)
				if err != nil {
					return nil, err
				}
				o.Store = st
				return files.Open(ctx, o)
			}
			// An object is cut when the loader says it is due (max_bytes
			// compressed, or max_delay), or when the enriched lines held
			// for it reach the destination's share of memory_limit
			// (MemoryPlan.DestinationBytes).
			r.MaxRecords, r.MaxBytes, r.MaxDelay = 1<<22, budget, obj.MaxDelay
		default:
			return fmt.Errorf("destination %s: type %q is not one furrow run loads", d.Name, d.Type)
		}
		a.dests = append(a.dests, destination{d, r})
	}
	return nil
}

// enrichedOptions are the enriched log's, from those of the other logs
// with its directory: frames are larger records than payloads.
func enrichedOptions(opts wal.Options) wal.Options {
	opts.MaxRecordBytes = loader.MaxFrameBytes + 1<<20
	opts.SegmentBytes = max(opts.SegmentBytes, 2*int64(opts.MaxRecordBytes))
	return opts
}

// objectStore returns how to open a files or s3 destination's store.
func objectStore(d config.Destination) func(ctx context.Context) (files.Store, error) {
	if d.Files != nil {
		path := d.Files.Path
		return func(context.Context) (files.Store, error) { return files.OpenDir(path) }
	}
	s := d.S3
	o := files.S3Options{Bucket: s.Bucket, Prefix: s.Prefix, Region: s.Region, Endpoint: s.Endpoint, PathStyle: s.PathStyle,
		AccessKeyID: s.AccessKeyID.Value(), SecretAccessKey: s.SecretAccessKey.Value()}
	return func(ctx context.Context) (files.Store, error) { return files.OpenS3(ctx, o) }
}

// logID returns the id of the log in dir, creating it with the log.
func logID(dir string) (string, error) {
	p := filepath.Join(dir, "id")
	b, err := os.ReadFile(p)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if _, perr := uuid.Parse(id); perr != nil {
			return "", fmt.Errorf("%s is not a log id (%v): delete it only together with the log", p, perr)
		}
		// Narrowed like everything furrow keeps (see privateDataDir).
		if err := os.Chmod(p, 0o600); err != nil {
			return "", err
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	id := uuid.NewString()
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(id + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	return id, err
}

// checkEnrichedDrained refuses to start without the enriched log (one
// duckdb destination, loaded by the enricher) while that log, left by a
// run with more destinations, holds events some destination has not
// loaded: they would never be loaded.
func checkEnrichedDrained(opts wal.Options) error {
	opts = enrichedOptions(opts)
	dir := opts.Dir
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	opts.OnDamage = nil // only reading positions
	l, err := wal.Open(opts)
	if err != nil {
		return fmt.Errorf("log/enriched: %w", err)
	}
	defer l.Close()
	var left []string
	for _, name := range l.Readers() {
		if strings.HasPrefix(name, loader.ReaderName("")) && l.Lag(name) > 0 {
			left = append(left, fmt.Sprintf("%s (%d bytes)", strings.TrimPrefix(name, loader.ReaderName("")), l.Lag(name)))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("%s holds events not yet loaded into destination %s, from a run with a destinations list: start furrow with that list until they are loaded (a graceful stop loads them), or delete the directory to give them up",
			dir, strings.Join(left, ", "))
	}
	return nil
}

// isDestination tells a destination's health component by its name.
func isDestination(name string) bool { return strings.HasPrefix(name, "destination/") }

// moveReader moves reader name of l forward to pos if it is behind.
func moveReader(l *wal.Log, name string, pos int64) error {
	if pos <= 0 {
		return nil
	}
	rd, err := l.Reader(name)
	if err != nil {
		return err
	}
	defer rd.Close()
	if rd.Position() >= pos {
		return nil
	}
	if pos > l.End() {
		return fmt.Errorf("a position stored downstream (%d) is beyond the end of this log (%d): were the data of two data directories mixed?", pos, l.End())
	}
	rd.Rewind(pos)
	return rd.Commit(pos)
}

// openMarked makes the fused path's sinks: the enricher's, keyed by the
// raw log's id, and the collector's bad rows', keyed by that log's. Each
// log's reader is moved past what DuckDB holds already, so that a crash
// between DuckDB's commit and the reader's is not loaded twice.
func (a *App) openMarked(ctx context.Context, walOpts func(string) wal.Options) error {
	for _, m := range []struct {
		log     string
		l       *wal.Log
		reader  string
		sinks   **duckdb.Marked
		badOnly bool
	}{{"raw", a.raw, "enrich", &a.storeRaw, false}, {"collector-bad", a.bad, "load", &a.storeBad, true}} {
		id, err := logID(walOpts(m.log).Dir)
		if err != nil {
			return fmt.Errorf("log/%s: %w", m.log, err)
		}
		*m.sinks = a.store.Marked(m.log+"@"+id, m.badOnly)
		pos, err := (*m.sinks).Position(ctx)
		if err != nil {
			return err
		}
		if err := moveReader(m.l, m.reader, pos); err != nil {
			return fmt.Errorf("log/%s: %w", m.log, err)
		}
	}
	return nil
}

// destinationNames lists the destinations for the start message.
func destinationNames(cfg config.Config) string {
	var names []string
	for _, d := range cfg.EffectiveDestinations() {
		names = append(names, d.Name+" ("+d.Type+")")
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
