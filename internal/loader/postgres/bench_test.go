package postgres

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/testutil"
)

// BenchmarkLoadVsPsqlCopy loads the same 50,000 page views into the
// events table with Load and with psql's \copy of a file holding the
// same TSV lines, three times each, and reports both rates and their
// ratio (furrow / psql). The file is read as CSV with a tab delimiter
// and \x01 as the quote character, which no line holds: every byte is
// then taken as is, an empty field is NULL, as in the enriched TSV.
// Run it with -benchtime 1x.
func BenchmarkLoadVsPsqlCopy(b *testing.B) {
	const rows, reps = 50_000, 3
	pg := testutil.Postgres(b)
	l := open(b, pg.DSN())
	ctx := context.Background()
	lines := pageViews(rows, 0)
	file := filepath.Join(b.TempDir(), "events.tsv")
	if err := os.WriteFile(file, append(bytes.Join(lines, []byte("\n")), '\n'), 0o644); err != nil {
		b.Fatal(err)
	}
	copyCmd := `\copy atomic.events (` + columnList + `) FROM '` + file + `' WITH (FORMAT csv, DELIMITER E'\t', QUOTE E'\x01')`
	reset := func() { pg.Psql("-c", `TRUNCATE atomic.events, atomic._furrow_positions; CHECKPOINT`) }
	var furrow, psql time.Duration
	b.ResetTimer()
	for range b.N {
		for r := range reps {
			reset()
			t0 := time.Now()
			if err := l.Load(ctx, loader.Batch{Start: int64(r) * rows, End: int64(r+1) * rows, Good: lines}); err != nil {
				b.Fatal(err)
			}
			furrow += time.Since(t0)
			if n := pg.Psql("-c", `SELECT count(*) FROM atomic.events`); n != "50000" {
				b.Fatalf("furrow loaded %s rows", n)
			}
			reset()
			t0 = time.Now()
			pg.Psql("-c", copyCmd)
			psql += time.Since(t0)
			if n := pg.Psql("-c", `SELECT count(*) FROM atomic.events`); n != "50000" {
				b.Fatalf("psql loaded %s rows", n)
			}
		}
	}
	n := float64(rows * reps * b.N)
	fr, pr := n/furrow.Seconds(), n/psql.Seconds()
	b.ReportMetric(fr, "furrow-events/s")
	b.ReportMetric(pr, "psql-events/s")
	b.ReportMetric(fr/pr, "ratio")
}
