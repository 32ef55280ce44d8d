package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/testutil"
	"github.com/furrow-io/furrow/internal/wal"
)

// The runner feeds Postgres from a log through an outage and a crash:
// while the server is down the events wait in the log; once it is back
// they load; a runner restarted on a log whose reader position lags what
// Postgres holds (a crash between commit and the reader's commit) loads
// nothing twice. Counts are read back with psql.
func TestRunnerIntoPostgres(t *testing.T) {
	pg := testutil.Postgres(t)
	dir := t.TempDir()
	log, err := wal.Open(wal.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	dest := open(t, pg.DSN())
	appendLines := func(from, n int) {
		for _, l := range pageViews(n, from) {
			if err := log.Append(loader.GoodRecord(l)); err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func() string {
		return strings.TrimSpace(pg.Psql("-tAc", "SELECT count(*) || ' ' || count(DISTINCT event_id) FROM atomic.events"))
	}
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		r := &loader.Runner{Name: "postgres", Loader: dest, Log: log, MaxRecords: 500, MaxDelay: 10 * time.Millisecond,
			RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond, Logger: quiet}
		go func() { done <- r.Run(ctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	wait := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for count() != want {
			if time.Now().After(deadline) {
				t.Fatalf("events: %s, want %s", count(), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	stop := run()
	appendLines(0, 2000)
	wait("2000 2000")
	pg.Stop()
	appendLines(2000, 1000) // collected while Postgres is down
	time.Sleep(300 * time.Millisecond)
	if log.Lag(loader.ReaderName("postgres")) == 0 {
		t.Fatal("nothing waits in the log while Postgres is down")
	}
	pg.Start()
	wait("3000 3000")
	stop()

	// A crash after Postgres committed and before the reader did: rewind
	// the reader's position to the start, as if it had never committed.
	rd, err := log.Reader(loader.ReaderName("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rd.Commit(0); err != nil {
		t.Fatal(err)
	}
	rd.Close()
	stop = run()
	appendLines(3000, 500)
	wait("3500 3500")
	stop()
}
