package wal

import (
	"context"

	"github.com/furrow-io/furrow/internal/stream"
)

// Sink returns a stream.Sink that appends to the log.
func (l *Log) Sink() stream.Sink { return logSink{l} }

type logSink struct{ l *Log }

func (s logSink) Write(_ context.Context, records ...[]byte) error { return s.l.Append(records...) }
func (s logSink) Close(context.Context) error                      { return nil }
func (s logSink) Healthy() bool                                    { return s.l.Healthy() }

// Source returns a stream.Source reading the log as the named reader, in
// batches of at most maxRecords records and about maxBytes bytes.
func (l *Log) Source(name string, maxRecords, maxBytes int) (stream.Source, error) {
	r, err := l.Reader(name)
	if err != nil {
		return nil, err
	}
	return &logSource{r: r, maxRecords: maxRecords, maxBytes: maxBytes}, nil
}

type logSource struct {
	r                    *Reader
	maxRecords, maxBytes int
}

func (s *logSource) Read(ctx context.Context) (*stream.Batch, error) {
	recs, err := s.r.Read(ctx, s.maxRecords, s.maxBytes)
	if err != nil {
		return nil, err
	}
	// Copy the batch out of the reader's buffer in one allocation, so the
	// batch stays valid while later batches are read.
	total := 0
	for _, rec := range recs {
		total += len(rec.Data)
	}
	buf := make([]byte, 0, total)
	out := make([][]byte, len(recs))
	for i, rec := range recs {
		start := len(buf)
		buf = append(buf, rec.Data...)
		out[i] = buf[start:len(buf):len(buf)]
	}
	next := recs[len(recs)-1].Next
	return &stream.Batch{Records: out, Position: next, Ack: func(context.Context) error { return s.r.Commit(next) }}, nil
}

func (s *logSource) Close(context.Context) error { return s.r.Close() }
