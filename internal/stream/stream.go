// Package stream defines the small interfaces that connect furrow's stages:
// a Sink takes records and returns once they are durable, a Source hands
// out batches that are acknowledged once their results are durable.
package stream

import (
	"context"
	"errors"
)

// Sink stores records. Write returns only when the records are durable
// in the sink's own terms (written to the log, committed to the database,
// acknowledged by the broker), so the caller may acknowledge its input;
// for a sink that is also a Flusher, only once Flush has returned.
type Sink interface {
	Write(ctx context.Context, records ...[]byte) error
	Close(ctx context.Context) error
}

// Flusher is implemented by sinks that buffer: their writes are durable
// only once Flush returns. Buffering lets a warehouse load large batches,
// which costs far less per event than many small ones. Flush makes durable
// at least every write that returned before it was called; writes may go
// on while it runs (they are stored by this flush or the next).
type Flusher interface {
	Flush(ctx context.Context) error
}

// BlockFlusher is implemented by buffering sinks that store most cheaply
// in whole blocks (a warehouse's row groups). FlushBlocks stores like
// Flush but may keep the newest writes, fewer than a block, for a later
// flush. Writes are stored in order, so what it keeps is always the
// newest: held counts back from the newest write (at the time of the
// call or after) and covers every record kept.
type BlockFlusher interface {
	Flusher
	FlushBlocks(ctx context.Context) (held int, err error)
	// Staged is the number of records that the next flush would store
	// or keep: written and not yet taken by a flush.
	Staged() int
}

// Flush flushes s if it buffers.
func Flush(ctx context.Context, s Sink) error {
	if f, ok := s.(Flusher); ok {
		return f.Flush(ctx)
	}
	return nil
}

// Healthy is implemented by sinks that can tell whether writes currently
// succeed.
type Healthy interface {
	Healthy() bool
}

// Batch is a group of records read from a Source.
type Batch struct {
	Records [][]byte
	// Ack marks the batch, and every batch read before it, as processed.
	// Batches must be acknowledged in the order they were read.
	Ack func(ctx context.Context) error
	// Position is where the source resumes after this batch once it is
	// acknowledged (a log offset), for a Marker; 0 if the source has no
	// such position.
	Position int64
}

// Marker is implemented by sinks that record, with what they store, how
// far their input has been processed, so that a crash between storing
// and acknowledging does not process a batch twice (the enriched log
// does, see loader.Enriched). Mark tells the sink that everything
// written to it since the last Mark is the whole output of the batches
// up to and including b; a flush stores only what was written before
// the last Mark, with b's Position.
type Marker interface {
	Mark(b *Batch)
}

// MarkWritten calls s.Mark(b) if s is a Marker.
func MarkWritten(s Sink, b *Batch) {
	if m, ok := s.(Marker); ok {
		m.Mark(b)
	}
}

// Source yields batches of records in order.
type Source interface {
	// Read blocks until a batch is available or ctx is done. A batch's
	// records stay valid after later calls to Read, so batches can be
	// processed while the next ones are read.
	Read(ctx context.Context) (*Batch, error)
	Close(ctx context.Context) error
}

// SinkFunc adapts a function to Sink, for tests and small adapters.
type SinkFunc func(ctx context.Context, records ...[]byte) error

func (f SinkFunc) Write(ctx context.Context, records ...[]byte) error { return f(ctx, records...) }
func (f SinkFunc) Close(context.Context) error                        { return nil }

// Permanent marks err as one that retrying cannot fix: a configuration
// or permission problem, a destination that refuses what it is given.
// A stage that meets a permanent error stops, and furrow with it, loudly;
// any other error from a Source or Sink is taken as passing (a full
// disk, an unreachable destination) and retried with backoff while the
// stage reports itself unhealthy.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked
// with Permanent, or says so itself with a method Permanent() bool that
// returns true (as a sink's own error type can).
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

type permanentError struct{ err error }

func (p permanentError) Error() string   { return p.err.Error() }
func (p permanentError) Unwrap() error   { return p.err }
func (p permanentError) Permanent() bool { return true }
