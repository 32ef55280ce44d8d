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
// Each line is converted in Go to the binary values of its columns
// first; a line that does not convert (a wrong field count, a value its
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

func (l *Loader) load(ctx context.Context, b loader.Batch) error {
	conn, err := l.connect(ctx)
	if err != nil {
		return err
	}
	var good rows
	good.buf = l.buf[:0]
	var goodLines [][]byte // the line of each tuple, for bad rows
	bad := make([][]byte, 0, len(b.Bad))
	bad = append(bad, b.Bad...)
	for _, line := range b.Good {
		buf, err := encodeLine(good.buf, line)
		if err != nil {
			bad = append(bad, parsingError(l.opts.Processor, err, line))
			continue
		}
		good.add(buf)
		goodLines = append(goodLines, line)
	}
	defer func() { l.buf = good.buf[:0] }()

	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	s := quoteIdent(l.opts.Schema)
	var pos int64
	err = tx.QueryRow(ctx, "SELECT position FROM "+s+"."+PositionsTable+" WHERE destination = $1 FOR UPDATE", PositionKey).Scan(&pos)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("reading the position: %w", err)
	}
	if b.End <= pos {
		l.log.Debug("batch already loaded, skipped", "start", b.Start, "end", b.End, "position", pos)
		return nil
	}

	var refused int
	err = l.copyRows(ctx, tx, s+".events ("+columnList+")", &good, 0, len(good.ends), func(i int, pe *pgconn.PgError) {
		refused++
		bad = append(bad, refusedLine(l.opts.Processor, pe, goodLines[i]))
	})
	if err != nil {
		return fmt.Errorf("copying events: %w", err)
	}
	var br rows
	for _, row := range bad {
		br.add(appendBadRow(br.buf, row, badRowSchema(row)))
	}
	err = l.copyRows(ctx, tx, s+".bad_rows (schema, failure_type, payload)", &br, 0, len(br.ends), func(i int, pe *pgconn.PgError) {
		refused++
		l.log.Warn("bad row refused by Postgres, stored as a JSON string", "error", pe.Message)
		var one rows
		one.add(appendBadRow(nil, quoteRow(bad[i]), ""))
		if err := l.copyRows(ctx, tx, s+".bad_rows (schema, failure_type, payload)", &one, 0, 1, nil); err != nil {
			l.log.Error("bad row lost: Postgres refused it even as a JSON string", "error", err)
		}
	})
	if err != nil {
		return fmt.Errorf("copying bad rows: %w", err)
	}
	_, err = tx.Exec(ctx, "INSERT INTO "+s+"."+PositionsTable+` (destination, position, updated_at)
VALUES ($1, $2, now() AT TIME ZONE 'utc')
ON CONFLICT (destination) DO UPDATE SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at`, PositionKey, b.End)
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

var columnList = func() string {
	names := make([]string, event.NumFields)
	for i, f := range event.Fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}()

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

// copyRows COPYs tuples [i, j) of r into target under a savepoint. If
// Postgres refuses them for their data, it halves the range until each
// refused tuple is alone and calls refused with it (an error if refused
// is nil).
func (l *Loader) copyRows(ctx context.Context, tx pgx.Tx, target string, r *rows, i, j int, refused func(int, *pgconn.PgError)) error {
	if i == j {
		return nil
	}
	if _, err := tx.Exec(ctx, "SAVEPOINT furrow_copy"); err != nil {
		return err
	}
	src := io.MultiReader(bytes.NewReader(copyHeader), bytes.NewReader(r.span(i, j)), bytes.NewReader(copyTrailer))
	_, err := tx.Conn().PgConn().CopyFrom(ctx, src, "COPY "+target+" FROM STDIN (FORMAT binary)")
	if err == nil {
		_, err = tx.Exec(ctx, "RELEASE SAVEPOINT furrow_copy")
		return err
	}
	pe, ok := dataError(err)
	if !ok || refused == nil {
		return err
	}
	if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT furrow_copy"); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT furrow_copy"); err != nil {
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

// parsingError is the loader_parsing_error bad row of a line that did
// not convert.
func parsingError(p badrows.Processor, err error, line []byte) []byte {
	var f badrows.ParsingFailure
	var pe *event.ParseError
	switch {
	case errors.As(err, &pe) && pe.FieldCount != 0:
		n := pe.FieldCount
		f = badrows.ParsingFailure{Type: "FieldNumberMismatch", FieldCount: &n}
	case errors.As(err, &pe):
		f.Type = "RowDecodingError"
		for _, iv := range pe.Invalid {
			f.Errors = append(f.Errors, badrows.InvalidValue{Type: "InvalidValue", Key: iv.Field, Value: iv.Value, Message: iv.Message})
		}
	default:
		f = badrows.ParsingFailure{Type: "RowDecodingError", Errors: []badrows.InvalidValue{{Type: "InvalidValue", Key: "line", Message: err.Error()}}}
	}
	return badrows.LoaderParsingError(p, f, string(line))
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
