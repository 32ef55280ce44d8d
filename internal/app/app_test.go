package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"testing"

	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/wal"
)

// A second furrow on a data directory in use stops at the log, before it
// touches anything, and the first goes on collecting. Without DuckDB
// nothing else would stop it.
func TestDataDirInUse(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	cfg.DuckDB.Enabled = false
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	if _, err := New(ctx, cfg, slog.New(slog.DiscardHandler)); !errors.Is(err, wal.ErrLocked) {
		t.Fatalf("second furrow: %v, want wal.ErrLocked", err)
	}
	resp, err := http.Get("http://" + a.Addr() + "/i?e=pv&p=web")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d after the second furrow gave up", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Stopped, the directory is free again.
	b, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b.closeAll(context.Background())
}
