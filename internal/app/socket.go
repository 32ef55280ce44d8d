package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/furrow-io/furrow/internal/loader/duckdb"
)

// Socket is the Unix socket on which a running furrow serves its admin
// surface without authentication (package admin: health, readiness,
// usage figures, metrics, the status page) and answers `furrow sql`
// (POST /sql, /v1/sql), which no network listener does.
// DuckDB lets only one process open the database file, so queries while
// furrow runs go through furrow. The socket is created accessible to
// furrow's own user only: that is its access control.
func Socket(dataDir string) string { return filepath.Join(dataDir, "furrow.sock") }

// QueryErrorTrailer is the HTTP trailer that reports a query that failed
// after its first rows were sent.
const QueryErrorTrailer = "Furrow-Error"

// maxSocketPath is the longest Unix socket path every platform accepts.
const maxSocketPath = 103

// listenSocket opens the socket, replacing one left behind by a furrow
// that did not stop cleanly.
func listenSocket(dataDir string) (net.Listener, error) {
	path := Socket(dataDir)
	if len(path) > maxSocketPath {
		return nil, errors.New("the path is too long for a Unix socket: " + path)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, errors.New("another furrow answers on " + path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	return listenPrivate(path)
}

// querier runs a query within limits and writes its result
// (duckdb.Store).
type querier interface {
	Query(ctx context.Context, query string, lim duckdb.Limits, w io.Writer) error
}

// sqlHandler answers furrow sql's queries with s (nil when DuckDB is
// disabled), each within the sql section's limits.
func (a *App) sqlHandler(s querier) http.Handler {
	if s == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "the DuckDB warehouse is disabled (duckdb.enabled: false) or this role has none", http.StatusNotFound)
		})
	}
	lim := a.cfg.SQL
	return queryHandler(s, duckdb.Limits{Timeout: lim.Timeout, MaxResultBytes: lim.MaxResultBytes}, a.log)
}

// writeMargin is how long past its time limit a query's answer may take
// to be written: enough for the error of an interrupted query, not for a
// client that stopped reading to hold the query's connection for good.
const writeMargin = 10 * time.Second

// queryHandler answers POST /sql: the body is one SELECT or EXPLAIN, the
// answer its result as TSV (see duckdb.QueryTSV). The limits are the
// server's own: nothing in the request changes them.
func queryHandler(s querier, lim duckdb.Limits, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		q, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Trailer", QueryErrorTrailer)
		w.Header().Set("Content-Type", "text/tab-separated-values; charset=utf-8")
		sw := &startedWriter{w: w}
		start := time.Now()
		if lim.Timeout > 0 {
			if err := http.NewResponseController(w).SetWriteDeadline(start.Add(lim.Timeout + writeMargin)); err != nil {
				log.Debug("query: no write deadline", "err", err)
			}
		}
		err = s.Query(r.Context(), string(q), lim, sw)
		log.Debug("query", "sql", string(q), "seconds", time.Since(start).Seconds(), "err", err)
		if err == nil {
			return
		}
		msg := strings.Join(strings.Fields(err.Error()), " ")
		var tl *duckdb.TimeLimitError
		var rl *duckdb.ResultLimitError
		switch {
		case errors.As(err, &tl):
			msg += " (sql.timeout in the configuration of the running furrow; 0 means no limit)"
		case errors.As(err, &rl):
			msg += " (sql.max_result_bytes in the configuration of the running furrow; 0 means no limit)"
		}
		if !sw.started {
			http.Error(w, msg, http.StatusBadRequest)
			return
		}
		w.Header().Set(QueryErrorTrailer, msg)
	})
}

// startedWriter notes whether anything was written.
type startedWriter struct {
	w       io.Writer
	started bool
}

func (s *startedWriter) Write(p []byte) (int, error) {
	s.started = true
	return s.w.Write(p)
}

// serveSocket serves the socket until it is closed, and the admin
// listener (serveAdmin); readiness turns on, and off again once ctx is
// done (draining).
func (a *App) serveSocket(ctx context.Context) {
	a.serving.Store(true)
	go func() {
		<-ctx.Done()
		a.draining.Store(true)
	}()
	go a.serveAdmin(ctx)
	if a.sockServer == nil {
		return
	}
	a.sockServer.Handler = a.adminHandler(a.sockQ, true)
	if err := a.sockServer.Serve(a.sockListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("socket", "path", Socket(a.cfg.DataDir), "err", err)
	}
}

// stopSocket closes the socket, cancelling queries in progress, and the
// admin listener.
func (a *App) stopSocket() {
	a.draining.Store(true)
	a.stopAdmin(context.Background())
	if a.sockServer != nil {
		a.sockServer.Close()
	}
	if a.sockListener != nil {
		a.sockListener.Close() // removes the socket file
	}
}
