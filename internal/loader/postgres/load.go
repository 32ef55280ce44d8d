package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/loader"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Load stores b in one transaction: the good lines COPYed (binary
// format) into events, the bad rows into bad_rows, and b.End as the
// position. A batch that ends at or before the stored position is
// already loaded and is skipped.
//
// Each line is converted in Go to the binary values of its columns as
// COPY streams them (the whole batch stays in memory, about the size of
// its TSV, for a bisection); a line that does not convert (a wrong field count, a value its
// column's type refuses, a required column empty, text that is not
// UTF-8 or holds a NUL byte, JSON that is invalid or holds \u0000)
// becomes a loader_parsing_error bad row instead, so COPY does not fail
// on data. Should Postgres still refuse a row (a data or integrity
// error), the rows are halved under savepoints until the refused ones
// are found; they become loader_parsing_error rows too.
func (l *Loader) Load(ctx context.Context, b loader.Batch) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.load(ctx, b)
	if err != nil {
		err = l.classify(ctx, err)
		if loader.IsRetryable(err) || ctx.Err() != nil {
			l.drop() // a fresh connection for the retry
		}
	}
	return err
}

// rows are the tuples of one table, encoded for binary COPY, one after
// the other in buf; ends[i] is where tuple i ends.
type rows struct {
	buf  []byte
	ends []int
}

func (r *rows) add(buf []byte) { r.buf = buf; r.ends = append(r.ends, len(buf)) }

// span returns tuples [i, j).
func (r *rows) span(i, j int) []byte {
	start := 0
	if i > 0 {
		start = r.ends[i-1]
	}
	return r.buf[start:r.ends[j-1]]
}

// encoder is the source of the events COPY: it converts the good lines
// a chunk at a time as COPY reads (pgconn reads in its own goroutine, so
// converting overlaps sending), keeping every tuple in good for a
// bisection, and the loader_parsing_error rows of the lines that do not
// convert in bad.
type encoder struct {
	proc      badrows.Processor
	lines     [][]byte
	next      int      // first line not converted yet
	good      rows     // tuples converted
	goodLines [][]byte // the line of each tuple
	bad       [][]byte
	pend      []byte // to be read next
	started   bool
	ended     bool
}

// chunkBytes is about how much an encoder converts at a time.
const chunkBytes = 256 << 10

func (e *encoder) Read(p []byte) (int, error) {
	for len(e.pend) == 0 {
		switch {
		case !e.started:
			e.pend, e.started = copyHeader, true
		case e.next < len(e.lines):
			from := len(e.good.buf)
			e.convert(from + chunkBytes)
			e.pend = e.good.buf[from:]
		case !e.ended:
			e.pend, e.ended = copyTrailer, true
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, e.pend)
	e.pend = e.pend[n:]
	return n, nil
}

// convert converts lines until good.buf reaches limit bytes or none is
// left.
func (e *encoder) convert(limit int) {
	for e.next < len(e.lines) && len(e.good.buf) < limit {
		line := e.lines[e.next]
		e.next++
		buf, err := encodeLine(e.good.buf, line)
		if err != nil {
			e.bad = append(e.bad, parsingError(e.proc, err, line))
			continue
		}
		e.good.add(buf)
		e.goodLines = append(e.goodLines, line)
	}
}

func (l *Loader) load(ctx context.Context, b loader.Batch) error {
	conn, err := l.connect(ctx)
	if err != nil {
		return err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	s := quoteIdent(l.opts.Schema)
	var pos int64
	err = tx.QueryRow(ctx, "SELECT position FROM "+s+"."+PositionsTable+" WHERE destination = $1 FOR UPDATE", l.opts.Name).Scan(&pos)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("reading the position: %w", err)
	}
	if b.End <= pos {
		l.log.Debug("batch already loaded, skipped", "start", b.Start, "end", b.End, "position", pos)
		return nil
	}

	// The encoder's buffer is l.buf's again only once COPY has surely
	// stopped reading it (on an error that closes the connection, pgconn
	// may return before its reader goroutine ends).
	enc := &encoder{proc: l.opts.Processor, lines: b.Good, good: rows{buf: l.buf[:0]}}
	l.buf = nil
	var refused int
	events := s + ".events (" + columnList + ")"
	err = l.copyFrom(ctx, tx, events, enc)
	if _, data := dataError(err); data {
		enc.convert(int(^uint(0) >> 1))
		err = l.copyRows(ctx, tx, events, &enc.good, 0, len(enc.good.ends), func(i int, pe *pgconn.PgError) {
			refused++
			enc.bad = append(enc.bad, refusedLine(l.opts.Processor, pe, enc.goodLines[i]))
		})
	}
	if err != nil {
		return fmt.Errorf("copying events: %w", err)
	}
	l.buf = enc.good.buf[:0]

	bad := append(b.Bad[:len(b.Bad):len(b.Bad)], enc.bad...)
	var br rows
	for _, row := range bad {
		br.add(appendBadRow(br.buf, row, badRowSchema(row)))
	}
	target := s + ".bad_rows (schema, failure_type, payload)"
	err = l.copyRows(ctx, tx, target, &br, 0, len(br.ends), func(i int, pe *pgconn.PgError) {
		refused++
		l.log.Warn("bad row refused by Postgres, stored as a JSON string", "error", pe.Message)
		var one rows
		one.add(appendBadRow(nil, quoteRow(bad[i]), ""))
		if err := l.copyRows(ctx, tx, target, &one, 0, 1, nil); err != nil {
			l.log.Error("bad row lost: Postgres refused it even as a JSON string", "error", l.scrub(err))
		}
	})
	if err != nil {
		return fmt.Errorf("copying bad rows: %w", err)
	}
	_, err = tx.Exec(ctx, "INSERT INTO "+s+"."+PositionsTable+` (destination, position, updated_at)
VALUES ($1, $2, now() AT TIME ZONE 'utc')
ON CONFLICT (destination) DO UPDATE SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at`, l.opts.Name, b.End)
	if err != nil {
		return fmt.Errorf("storing the position: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if refused > 0 {
		l.log.Warn("rows refused by Postgres after conversion, stored as bad rows", "rows", refused, "start", b.Start, "end", b.End)
	}
	return nil
}

var columnNames = func() []string {
	names := make([]string, event.NumFields)
	for i, f := range event.Fields {
		names[i] = f.Name
	}
	return names
}()

var columnList = strings.Join(columnNames, ", ")

// dataError tells whether Postgres refused a COPY for a row's values
// (data exception, integrity violation, program limit) rather than for
// the connection or the schema.
func dataError(err error) (*pgconn.PgError, bool) {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return nil, false
	}
	c := pe.Code
	return pe, strings.HasPrefix(c, "22") || strings.HasPrefix(c, "23") || strings.HasPrefix(c, "54")
}

// copyFrom COPYs src (binary format) into target under a savepoint,
// rolled back if Postgres refuses the data.
func (l *Loader) copyFrom(ctx context.Context, tx pgx.Tx, target string, src io.Reader) error {
	if _, err := tx.Exec(ctx, "SAVEPOINT furrow_copy"); err != nil {
		return err
	}
	_, err := tx.Conn().PgConn().CopyFrom(ctx, src, "COPY "+target+" FROM STDIN (FORMAT binary)")
	if err == nil {
		_, err = tx.Exec(ctx, "RELEASE SAVEPOINT furrow_copy")
		return err
	}
	if _, data := dataError(err); !data {
		return err
	}
	if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT furrow_copy"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT furrow_copy"); err != nil {
		return err
	}
	return err
}

// copyRows COPYs tuples [i, j) of r into target. If Postgres refuses
// them for their data, it halves the range until each refused tuple is
// alone and calls refused with it (returns the error if refused is nil).
func (l *Loader) copyRows(ctx context.Context, tx pgx.Tx, target string, r *rows, i, j int, refused func(int, *pgconn.PgError)) error {
	if i == j {
		return nil
	}
	src := io.MultiReader(bytes.NewReader(copyHeader), bytes.NewReader(r.span(i, j)), bytes.NewReader(copyTrailer))
	err := l.copyFrom(ctx, tx, target, src)
	pe, data := dataError(err)
	if !data || refused == nil {
		return err
	}
	if j-i == 1 {
		refused(i, pe)
		return nil
	}
	m := i + (j-i)/2
	if err := l.copyRows(ctx, tx, target, r, i, m, refused); err != nil {
		return err
	}
	return l.copyRows(ctx, tx, target, r, m, j, refused)
}

// parsingError: see loader.ParsingError.
func parsingError(p badrows.Processor, err error, line []byte) []byte {
	return loader.ParsingError(p, err, line)
}

// refusedLine is the loader_parsing_error bad row of a line Postgres
// refused; the column is the one COPY names in its context, if any.
func refusedLine(p badrows.Processor, pe *pgconn.PgError, line []byte) []byte {
	key := pe.ColumnName
	if key == "" {
		// Where reads e.g. "COPY events, line 1, column page_title: ..."
		if k := strings.Index(pe.Where, "column "); k >= 0 {
			key = pe.Where[k+len("column "):]
			if e := strings.IndexAny(key, ": "); e >= 0 {
				key = key[:e]
			}
		}
	}
	if key == "" {
		key = "line"
	}
	f := badrows.ParsingFailure{Type: "RowDecodingError", Errors: []badrows.InvalidValue{{
		Type: "InvalidValue", Key: key, Message: "refused by Postgres: " + pe.Message + " (SQLSTATE " + pe.Code + ")"}}}
	return badrows.LoaderParsingError(p, f, string(line))
}

// badRowSchema reads the schema URI of a self-describing bad row.
func badRowSchema(row []byte) string {
	var sd struct {
		Schema string `json:"schema"`
	}
	if json.Unmarshal(row, &sd) != nil {
		return ""
	}
	return sd.Schema
}

func badrowsName(schema string) string {
	if n := badrows.Name(schema); n != "" {
		return n
	}
	return "unknown"
}

// quoteRow makes a JSON string of a bad row Postgres refused as JSON.
func quoteRow(row []byte) []byte {
	row = bytes.ReplaceAll(row, []byte{0}, []byte("\uFFFD"))
	q, _ := json.Marshal(string(row))
	return q
}
