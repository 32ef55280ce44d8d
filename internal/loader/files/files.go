// Package files is the object-store destination: it writes enriched
// events (gzipped TSV exactly as Snowplow's S3 loader does, gzipped
// Analytics-SDK JSON lines, or typed Parquet: see FormatParquet) and bad
// rows (gzipped self-describing JSON lines) as objects to a Store, a
// local directory today (Dir), S3 later.
//
// # Objects
//
// Each Load writes its own objects: one good object per partition of the
// good template present in the batch, and one bad object per partition
// of the bad template (which includes the bad row's schema). Their keys:
//
//	<GoodPrefix><partition>/<yyyy-MM-dd-HHmmss>-<Start>-<End>.tsv.gz   (or .json.gz, .parquet)
//	<BadPrefix><partition>/<yyyy-MM-dd-HHmmss>-<Start>-<End>.json.gz
//
// Start and End are the batch's log positions, zero-padded to 20 digits
// so that names sort as positions do. A destination loaded from several
// streams (furrow load: one per Kafka partition, Options.Part) has
// <Part>- before Start, and one state object per stream. The time is that of the earliest
// row in the object. Good events are partitioned by their own
// collector_tstamp (UTC), not the wall clock at upload as Snowplow's
// loader does: a replay of the same batch then writes the same keys with
// the same bytes. Bad rows are partitioned by their failure.timestamp;
// the loader_parsing_error rows of this destination by the rejected
// line's collector_tstamp; rows with neither by the time of the Load.
//
// # Exactly once
//
// The destination keeps a small state object, StateKey: the End of the
// last batch it holds, and while a Load is running, the keys it is
// writing. Load writes the state with those keys first, then the
// objects, then the state with the new End. A crash leaves at most the
// objects of the batch being loaded, and the state names them; the next
// Load (the replay) rewrites them, and deletes those the replayed batch
// does not rewrite (a batch cut differently, or a bad row timed by the
// clock), before it records its End. So the store holds every event once
// when Load returns. A reader that picks objects up as they appear
// (Snowpipe) can see the first attempt's objects before they are deleted
// only when the replay is cut differently or has clock-timed bad rows.
//
// # Rotation
//
// Load writes at most one object per partition and schema: how large
// objects are is decided by how the runner cuts batches. MaxBytes and
// MaxDelay are the runner's hints (Due).
package files

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/furrow-io/furrow/internal/analytics"
	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/loader"
)

// Formats of good objects.
const (
	FormatTSV  = "tsv.gz"
	FormatJSON = "json.gz"
)

// Defaults.
const (
	DefaultGoodPrefix    = "good/"
	DefaultBadPrefix     = "bad/"
	DefaultGoodPartition = "{yyyy}/{MM}/{dd}/{HH}"
	DefaultBadPartition  = "{vendor}.{name}/model={model}/{yyyy}/{MM}/{dd}/{HH}"
	DefaultMaxBytes      = 64 << 20
	DefaultMaxDelay      = 2 * time.Minute
)

// StateKey is the key of the destination's state object. Point readers
// (Snowpipe stages, Athena tables) at the good and bad prefixes, not at
// the root.
const StateKey = "_furrow/state.json"

// Options configure a files destination. Zero values take the defaults.
type Options struct {
	Store Store // required
	// Format of good objects: "tsv.gz" (default), "json.gz" or
	// "parquet".
	Format string
	// GoodPrefix and BadPrefix start the keys of good and bad objects
	// ("good/", "bad/"); "/" is added if missing. Neither may be a
	// prefix of the other, nor start with "_furrow/".
	GoodPrefix, BadPrefix string
	// GoodPartition and BadPartition are partition templates (see
	// ParseTemplate). The good one may only use {yyyy} {MM} {dd} {HH}
	// {mm} {ss}; the bad one also {vendor} {name} ({schema}) {format}
	// {model}.
	GoodPartition, BadPartition string
	// MaxBytes (compressed) and MaxDelay say when a batch is due (Due).
	MaxBytes int64
	MaxDelay time.Duration
	// Level is the gzip level (default gzip.DefaultCompression).
	Level int
	// Trusted skips the type check of each enriched line (event.Check),
	// for lines from furrow's own enricher, whose output always passes
	// it. The checks that keep an object readable still run: 131
	// columns, no line break, a readable collector_tstamp.
	Trusted bool
	// Processor names furrow in the loader_parsing_error bad rows.
	Processor badrows.Processor
	Now       func() time.Time // default time.Now
	Logger    *slog.Logger
	// Stream, when set, names the log whose positions Load is given
	// (furrow's enriched log has an id). A state of another stream (the
	// log was deleted and started again from 0) is not resumed from:
	// the destination starts at position 0, and its objects stay.
	Stream string
	// Part, when set, names one of several streams loaded into the same
	// prefixes (a Kafka partition: "<topic>-<partition>"): its state is
	// kept in _furrow/state-<Part>.json, and its objects' names carry it
	// before Start and End, so that the streams' positions never meet.
	Part string
}

// Loader is a files destination; it implements loader.Loader.
type Loader struct {
	o         Options
	good, bad Template
	ext       string
	stateKey  string
	part      string // "<Part>-" in object names, or empty

	mu      sync.Mutex
	closed  bool
	pos     int64
	pending []string // keys of a Load that did not finish, from the state
	zw      []*gzip.Writer

	// ratio is compressed/raw bytes of the last Load (float64 bits), for Due.
	ratio atomic.Uint64
}

var _ loader.Loader = (*Loader)(nil)

// state is the content of StateKey.
type state struct {
	// Stream names the log the positions are of (Options.Stream).
	Stream   string   `json:"stream,omitempty"`
	Position int64    `json:"position"`
	Pending  *pending `json:"pending,omitempty"`
}

type pending struct {
	Start int64    `json:"start"`
	End   int64    `json:"end"`
	Keys  []string `json:"keys"`
}

// Open checks the options and reads the destination's state.
func Open(ctx context.Context, o Options) (*Loader, error) {
	if o.Store == nil {
		return nil, errors.New("files: no store")
	}
	l := &Loader{}
	switch o.Format {
	case "", FormatTSV:
		o.Format, l.ext = FormatTSV, ".tsv.gz"
	case FormatJSON:
		l.ext = ".json.gz"
	case FormatParquet:
		l.ext = ".parquet"
	default:
		return nil, fmt.Errorf("files: unknown format %q (use tsv.gz, json.gz or parquet)", o.Format)
	}
	var err error
	if o.GoodPrefix, err = prefix(o.GoodPrefix, DefaultGoodPrefix); err != nil {
		return nil, fmt.Errorf("files: good prefix: %w", err)
	}
	if o.BadPrefix, err = prefix(o.BadPrefix, DefaultBadPrefix); err != nil {
		return nil, fmt.Errorf("files: bad prefix: %w", err)
	}
	if strings.HasPrefix(o.GoodPrefix, o.BadPrefix) || strings.HasPrefix(o.BadPrefix, o.GoodPrefix) {
		return nil, fmt.Errorf("files: good prefix %q and bad prefix %q overlap", o.GoodPrefix, o.BadPrefix)
	}
	if o.GoodPartition == "" {
		o.GoodPartition = DefaultGoodPartition
	}
	if o.BadPartition == "" {
		o.BadPartition = DefaultBadPartition
	}
	if l.good, err = ParseTemplate(o.GoodPartition, false); err != nil {
		return nil, fmt.Errorf("files: good partition: %w", err)
	}
	if l.bad, err = ParseTemplate(o.BadPartition, true); err != nil {
		return nil, fmt.Errorf("files: bad partition: %w", err)
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.MaxBytes < 0 || o.MaxDelay < 0 {
		return nil, fmt.Errorf("files: negative max_bytes %d or max_delay %s", o.MaxBytes, o.MaxDelay)
	}
	if o.Level == 0 {
		o.Level = gzip.DefaultCompression
	}
	if _, err := gzip.NewWriterLevel(nil, o.Level); err != nil {
		return nil, fmt.Errorf("files: gzip level: %w", err)
	}
	if o.Processor.Artifact == "" || o.Processor.Version == "" {
		return nil, errors.New("files: processor artifact and version are required (they name furrow in loader_parsing_error bad rows)")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Part != "" {
		if err := checkPath(o.Part); err != nil || strings.Contains(o.Part, "/") {
			return nil, fmt.Errorf("files: part %q: must be one path segment", o.Part)
		}
		l.stateKey, l.part = "_furrow/state-"+o.Part+".json", o.Part+"-"
	} else {
		l.stateKey = StateKey
	}
	l.o = o
	l.ratio.Store(math.Float64bits(1))
	st, err := l.readState(ctx)
	if err != nil {
		return nil, err
	}
	if o.Stream != "" && st.Stream != o.Stream && (st.Position > 0 || st.Pending != nil) {
		o.Logger.Warn("files: the destination's state is of another log (furrow's data directory was replaced): loading from the start of this one; the objects there stay",
			"state_stream", st.Stream, "stream", o.Stream, "state_position", st.Position)
		st = state{}
	}
	l.pos = st.Position
	if st.Pending != nil && st.Pending.End > st.Position {
		l.pending = st.Pending.Keys
		o.Logger.Info("files: a load did not finish; its objects are replaced by the next load",
			"start", st.Pending.Start, "end", st.Pending.End, "objects", len(st.Pending.Keys))
	}
	return l, nil
}

// prefix normalises a key prefix: default if empty, "/" added.
func prefix(p, def string) (string, error) {
	if p == "" {
		p = def
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	t := strings.TrimSuffix(p, "/")
	if strings.HasPrefix(t, "/") {
		return "", fmt.Errorf("%q: must be relative", p)
	}
	if err := checkPath(t); err != nil {
		return "", fmt.Errorf("%q: %w", p, err)
	}
	if t == "_furrow" || strings.HasPrefix(p, "_furrow/") {
		return "", fmt.Errorf("%q: _furrow/ is reserved for the destination's state", p)
	}
	return p, nil
}

func (l *Loader) readState(ctx context.Context) (state, error) {
	var st state
	b, err := l.o.Store.Get(ctx, l.stateKey)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("files: read state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("files: state %s is not valid: %w", l.stateKey, err)
	}
	return st, nil
}

func (l *Loader) writeState(ctx context.Context, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := l.o.Store.Put(ctx, l.stateKey, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("files: write state: %w", err)
	}
	return nil
}

// Position implements loader.Loader: the End recorded in the state
// object.
func (l *Loader) Position(ctx context.Context) (int64, error) {
	st, err := l.readState(ctx)
	if err == nil && l.o.Stream != "" && st.Stream != l.o.Stream {
		return 0, nil // another log's (see Options.Stream)
	}
	return st.Position, err
}

// Due tells the runner whether a batch of rawBytes of enriched lines and
// bad rows, whose first record is age old, should be loaded now: when
// its compressed size (estimated from the last Load's compression
// ratio, 1 before any) reaches MaxBytes, or age reaches MaxDelay.
// MaxBytes is soft, as in Snowplow's loader.
func (l *Loader) Due(rawBytes int, age time.Duration) bool {
	r := math.Float64frombits(l.ratio.Load())
	return float64(rawBytes)*r >= float64(l.o.MaxBytes) || age >= l.o.MaxDelay
}

// Close implements loader.Loader.
func (l *Loader) Close(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}

// object is one object being built.
type object struct {
	key   string
	first string // canonical timestamp of the earliest row
	buf   bytes.Buffer
	raw   []byte // lines not yet compressed
	zw    *gzip.Writer
	pq    *parquetObject // instead of raw and zw, for FormatParquet
}

const flushAt = 256 << 10

func (o *object) add(line []byte) error {
	o.raw = append(o.raw, line...)
	o.raw = append(o.raw, '\n')
	if len(o.raw) >= flushAt {
		return o.flush()
	}
	return nil
}

func (o *object) flush() error {
	_, err := o.zw.Write(o.raw)
	o.raw = o.raw[:0]
	return err
}

// Load implements loader.Loader.
func (l *Loader) Load(ctx context.Context, b loader.Batch) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("files: load after close")
	}
	if b.End <= l.pos {
		return nil // already held
	}
	if b.Start < l.pos {
		return fmt.Errorf("files: batch [%d, %d) overlaps the position %d it holds", b.Start, b.End, l.pos)
	}
	now := l.o.Now().UTC()
	goods, bads, raw, err := l.build(b, now)
	if err != nil {
		return err
	}
	objs := append(goods, bads...)
	defer l.release(objs)

	keys := make([]string, len(objs))
	compressed := 0
	for i, o := range objs {
		keys[i] = o.key
		compressed += o.buf.Len()
	}
	var stale []string
	for _, k := range l.pending {
		if !slices.Contains(keys, k) {
			stale = append(stale, k)
		}
	}
	if err := l.writeState(ctx, state{Stream: l.o.Stream, Position: l.pos, Pending: &pending{Start: b.Start, End: b.End, Keys: append(slices.Clone(keys), stale...)}}); err != nil {
		return err
	}
	l.pending = append(slices.Clone(keys), stale...)
	for _, o := range objs {
		if err := l.o.Store.Put(ctx, o.key, bytes.NewReader(o.buf.Bytes())); err != nil {
			return err
		}
	}
	for _, k := range stale {
		if err := l.o.Store.Delete(ctx, k); err != nil {
			return err
		}
	}
	if err := l.writeState(ctx, state{Stream: l.o.Stream, Position: b.End}); err != nil {
		return err
	}
	l.pos, l.pending = b.End, nil
	if raw > 0 {
		l.ratio.Store(math.Float64bits(float64(compressed) / float64(raw)))
	}
	return nil
}

func (l *Loader) newObject() *object {
	o := &object{}
	if n := len(l.zw); n > 0 {
		o.zw, l.zw = l.zw[n-1], l.zw[:n-1]
		o.zw.Reset(&o.buf)
	} else {
		o.zw, _ = gzip.NewWriterLevel(&o.buf, l.o.Level) // level checked by Open
	}
	return o
}

func (l *Loader) release(objs []*object) {
	for _, o := range objs {
		l.zw = append(l.zw, o.zw)
	}
}

// build encodes the batch into its objects, in key order. raw is the
// number of uncompressed bytes.
func (l *Loader) build(b loader.Batch, now time.Time) (goods, bads []*object, raw int, err error) {
	// Good rows go to the object of the partition their collector_tstamp
	// renders to; a template that uses only the first width characters
	// of a canonical timestamp is looked up by them.
	goodBy := map[string]*object{}
	type rejected struct {
		row []byte
		at  time.Time
	}
	var parsingErrors []rejected
	reject := func(err error, line []byte) {
		parsingErrors = append(parsingErrors, rejected{parsingError(l.o.Processor, err, line), lineTime(line, now)})
	}
	var partBuf []byte
	var row parquet.Row
	res := make([]prepared, len(b.Good))
	ready := l.prepare(b.Good, res)
	for i, line := range b.Good {
		if i%chunkLines == 0 {
			<-ready
		}
		raw += len(line) + 1
		ts, err := res[i].ts, res[i].err
		if err != nil {
			reject(err, line)
			continue
		}
		out := line
		if l.o.Format == FormatJSON {
			out, res[i].out = res[i].out, nil // converted by prepare
		}
		if l.o.Format == FormatParquet {
			if row, err = parquetRow(row, line); err != nil {
				reject(err, line)
				continue
			}
		}
		o := goodBy[string(ts[:l.good.width])]
		if o == nil {
			t, err := time.Parse(event.TimestampLayout, string(ts))
			if err != nil { // a trusted line with digits out of range
				reject(err, line)
				continue
			}
			partBuf = l.good.Render(partBuf[:0], t, SchemaKey{})
			o = l.newObject()
			o.key = string(partBuf) // completed below
			if l.o.Format == FormatParquet {
				o.pq = newParquetObject(&o.buf, l.o.Processor.Artifact+" version "+l.o.Processor.Version)
			}
			goodBy[string(ts[:l.good.width])] = o
			goods = append(goods, o)
		}
		if o.first == "" || string(ts) < o.first {
			o.first = string(ts)
		}
		if o.pq != nil {
			err = o.pq.add(row)
		} else {
			err = o.add(out)
		}
		if err != nil {
			return nil, nil, 0, err
		}
	}

	badBy := map[string]*object{}
	addBad := func(row []byte, def time.Time) error {
		raw += len(row) + 1
		row = oneLine(row)
		var head struct {
			Schema string `json:"schema"`
			Data   struct {
				Failure struct {
					Timestamp string `json:"timestamp"`
				} `json:"failure"`
			} `json:"data"`
		}
		_ = json.Unmarshal(row, &head) // what does not parse goes under "unknown"
		t, err := time.Parse(time.RFC3339Nano, head.Data.Failure.Timestamp)
		if err != nil {
			t = def
		}
		t = t.UTC()
		part := string(l.bad.Render(partBuf[:0], t, parseSchema(head.Schema)))
		o := badBy[part]
		if o == nil {
			o = l.newObject()
			o.key = part
			badBy[part] = o
			bads = append(bads, o)
		}
		ts := string(event.AppendTimestamp(nil, t))
		if o.first == "" || ts < o.first {
			o.first = ts
		}
		return o.add(row)
	}
	for _, row := range b.Bad {
		if err := addBad(row, now); err != nil {
			return nil, nil, 0, err
		}
	}
	for _, r := range parsingErrors {
		if err := addBad(r.row, r.at); err != nil {
			return nil, nil, 0, err
		}
	}

	name := func(o *object, pfx, ext string) error {
		if o.pq != nil {
			if err := o.pq.close(); err != nil {
				return err
			}
		} else if err := o.flush(); err != nil {
			return err
		} else if err := o.zw.Close(); err != nil {
			return err
		}
		t, _ := time.Parse(event.TimestampLayout, o.first)
		var k strings.Builder
		k.WriteString(pfx)
		if o.key != "" {
			k.WriteString(o.key)
			k.WriteByte('/')
		}
		fmt.Fprintf(&k, "%s-%s%020d-%020d%s", t.Format("2006-01-02-150405"), l.part, b.Start, b.End, ext)
		o.key = k.String()
		return nil
	}
	for _, o := range goods {
		if err := name(o, l.o.GoodPrefix, l.ext); err != nil {
			return nil, nil, 0, err
		}
	}
	for _, o := range bads {
		if err := name(o, l.o.BadPrefix, ".json.gz"); err != nil {
			return nil, nil, 0, err
		}
	}
	byKey := func(a, b *object) int { return strings.Compare(a.key, b.key) }
	slices.SortFunc(goods, byKey)
	slices.SortFunc(bads, byKey)
	return goods, bads, raw, nil
}

// lineTime returns the collector_tstamp of a line that could not be
// stored, if it has a readable one, else def: a loader_parsing_error row
// is partitioned by it, so that a replay writes it to the same key.
func lineTime(line []byte, def time.Time) time.Time {
	cols := bytes.SplitN(line, []byte{'\t'}, event.CollectorTstamp+2)
	if len(cols) <= event.CollectorTstamp {
		return def
	}
	t, err := event.ParseTimestamp(string(cols[event.CollectorTstamp]))
	if err != nil {
		return def
	}
	return t
}

// prepared is one good line checked: its collector_tstamp, or why it
// cannot be stored.
type prepared struct {
	ts  []byte
	err error
	// out is the line as the object holds it, when that differs (the
	// JSON of FormatJSON), in a buffer of its chunk.
	out []byte
}

const chunkLines = 1024

// prepare checks every line into res, and converts it to JSON for
// FormatJSON, in chunks of chunkLines, and sends on the returned channel
// once per chunk, in order, when that chunk's results are in. With more
// than one chunk it works in a goroutine of its own, beside the
// compression of the chunks before (checking, or converting, costs
// about as much as gzip).
func (l *Loader) prepare(lines [][]byte, res []prepared) <-chan int {
	n := (len(lines) + chunkLines - 1) / chunkLines
	ready := make(chan int, n)
	json := l.o.Format == FormatJSON
	work := func() {
		var buf []byte
		for c := range n {
			if json {
				buf = nil // the chunk's JSON is freed once it is compressed
			}
			for i := c * chunkLines; i < min((c+1)*chunkLines, len(lines)); i++ {
				res[i].ts, res[i].err = checkLine(lines[i], l.o.Trusted)
				if json && res[i].err == nil {
					start := len(buf)
					var err error
					if buf, err = analytics.AppendEventJSON(buf, lines[i]); err != nil {
						res[i].err, buf = err, buf[:start]
						continue
					}
					res[i].out = buf[start:len(buf):len(buf)]
				}
			}
			ready <- c
		}
	}
	if n > 1 {
		go work()
	} else {
		work()
	}
	return ready
}

// errNewline: a line holding a line break would be two lines in a
// line-delimited object.
var errNewline = errors.New("line contains a line break")

// checkLine verifies an enriched line (event.Check: its 131 columns, their
// types, required columns; only the column count if trusted) and returns
// its collector_tstamp, canonical. Lines that would break a reader of the
// file (a Snowpipe with ON_ERROR = skip_file drops the whole file) are
// refused here and become loader_parsing_error bad rows.
func checkLine(line []byte, trusted bool) ([]byte, error) {
	if bytes.IndexByte(line, '\n') >= 0 || bytes.IndexByte(line, '\r') >= 0 {
		return nil, errNewline
	}
	if !trusted {
		if err := event.Check(line); err != nil {
			return nil, err
		}
	} else if n := bytes.Count(line, []byte{'\t'}) + 1; n != event.NumFields {
		return nil, &event.ParseError{FieldCount: n}
	}
	v := line
	for range event.CollectorTstamp {
		v = v[bytes.IndexByte(v, '\t')+1:]
	}
	v = v[:bytes.IndexByte(v, '\t')]
	if canonical(v) {
		return v, nil
	}
	t, err := event.ParseTimestamp(string(v))
	if err != nil {
		return nil, &event.ParseError{Invalid: []event.InvalidValue{{Field: "collector_tstamp", Value: string(v), Message: "not a timestamp (yyyy-MM-dd HH:mm:ss.SSS)"}}}
	}
	return event.AppendTimestamp(nil, t), nil
}

// canonical tells whether v is spelled "2006-01-02 15:04:05.000" (digits
// in place; the ranges are event.Check's business).
func canonical(v []byte) bool {
	const layout = event.TimestampLayout
	if len(v) != len(layout) {
		return false
	}
	for i := range len(layout) {
		if c := layout[i]; c >= '0' && c <= '9' {
			if v[i] < '0' || v[i] > '9' {
				return false
			}
		} else if v[i] != c {
			return false
		}
	}
	return true
}

// oneLine returns a bad row as one line: compacted if it is JSON, its
// line breaks replaced by spaces if not.
func oneLine(r []byte) []byte {
	if !bytes.ContainsAny(r, "\n\r") {
		return r
	}
	var c bytes.Buffer
	if err := json.Compact(&c, r); err == nil {
		return c.Bytes()
	}
	return []byte(strings.NewReplacer("\n", " ", "\r", " ").Replace(string(r)))
}

// parsingError: see loader.ParsingError.
func parsingError(p badrows.Processor, err error, line []byte) []byte {
	return loader.ParsingError(p, err, line)
}
