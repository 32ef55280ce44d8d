// Package loader states the contract every destination implements
// (DuckDB, Postgres, files, S3), and the error classes a destination's
// runner acts on.
package loader

import (
	"context"
	"errors"
)

// Batch is a run of the enriched log, read in order: the enriched TSV
// lines of good events and the bad rows (self-describing JSON) found
// between two log positions. Start is the position of its first record,
// End the position just after its last; a destination that stores End
// with the rows can tell, after a crash, which batches it holds.
type Batch struct {
	Start, End int64
	Good       [][]byte // one enriched TSV line each, no newline
	Bad        [][]byte // one bad row each
	// More is set when the batch was cut by its size and more records
	// are waiting (traffic), not by a pause or a stop: a destination may
	// then keep part of it out of sight, stored, for the next load (see
	// duckdb.PendingTable).
	More bool
}

// Loader is one destination.
//
// Load stores the whole batch durably, good events and bad rows, or
// returns an error; a batch is never half stored in a way a retry would
// duplicate. A destination with transactions (DuckDB, Postgres) commits
// the rows and End together; one that writes objects names them from
// Start and End, so a retry or a replay after a crash overwrites the
// same objects. Rows the destination can never take (a value its column
// type refuses) are not an error: they are stored as loader_parsing_error
// bad rows in the same load.
//
// Load keeps nothing of b after it returns: the runner reuses the memory
// of its lines for the next batch.
//
// Position returns the End of the last batch the destination holds, 0 if
// none, as the destination itself records it; the runner resumes after
// it, and skips batches that end at or before it.
//
// Errors: wrap ErrRetryable for an outage (connection refused or lost, a
// timeout, a full disk, throttling) that the runner retries with backoff;
// any other error is permanent (wrong password, missing bucket or
// permission, a schema furrow cannot use) and stops the destination
// loudly. Close releases the destination; it does not load anything.
type Loader interface {
	Load(ctx context.Context, b Batch) error
	Position(ctx context.Context) (int64, error)
	Close(ctx context.Context) error
}

// ErrRetryable marks errors worth retrying: errors.Is(err, ErrRetryable).
var ErrRetryable = errors.New("retryable")

// Retryable wraps err as retryable.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &retryable{err}
}

type retryable struct{ err error }

func (r *retryable) Error() string        { return r.err.Error() }
func (r *retryable) Unwrap() []error      { return []error{r.err, ErrRetryable} }
func (r *retryable) Is(target error) bool { return target == ErrRetryable }

// IsRetryable tells whether err is worth retrying.
func IsRetryable(err error) bool { return errors.Is(err, ErrRetryable) }
