package duckdb

import (
	"context"
	"errors"

	"github.com/furrow-io/furrow/internal/loader"
)

// Loader is a placeholder until the duckdb destination is on the loader
// contract: a duckdb destination beside others refuses every load.
func (s *Store) Loader(name string) loader.Loader { return stubLoader{} }

type stubLoader struct{}

var errStub = errors.New("duckdb: loading beside other destinations is not built yet")

func (stubLoader) Load(context.Context, loader.Batch) error { return errStub }
func (stubLoader) Position(context.Context) (int64, error)  { return 0, errStub }
func (stubLoader) Close(context.Context) error              { return nil }
