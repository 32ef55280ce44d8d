package duckdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	duck "github.com/duckdb/duckdb-go/v2"
)

// ErrRetryable is matched (errors.Is) by the error of a Write or Flush
// that failed for a reason that can go away by itself: a full disk or
// quota, an I/O error, too little memory, or a database that DuckDB
// invalidated after failing to write it, which the store reopens. The
// same call, repeated once the cause is gone, succeeds. Errors that do
// not match it need an operator (a file furrow may not write, a
// read-only file system) or come from the caller (a cancelled context).
var ErrRetryable = errors.New("retryable")

// Error is the error of a sink's Write or Flush. Whatever its cause,
// nothing is lost or stored twice: a failed Write staged none of its
// records (and kept those of earlier Writes), a failed Flush left
// everything it did not load staged for the next one. Lines the database
// rejects are not errors: they become bad rows.
type Error struct {
	Op        string // "stage" for Write, "load" for Flush
	Table     string // "events" or "bad_rows"
	Retryable bool   // see ErrRetryable
	Err       error
}

func (e *Error) Error() string {
	class := "not retryable"
	if e.Retryable {
		class = "retryable"
	}
	return fmt.Sprintf("duckdb: %s %s (%s): %v", e.Op, e.Table, class, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent tells the pipeline (stream.IsPermanent) that retrying cannot
// help: the error is not retryable, and not the caller's own stop (a
// cancelled context), so furrow should stop and say why.
func (e *Error) Permanent() bool {
	return !e.Retryable && !errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, context.DeadlineExceeded)
}

// Is makes a retryable Error match ErrRetryable.
func (e *Error) Is(target error) bool { return target == ErrRetryable && e.Retryable }

func storeError(op, table string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Op: op, Table: table, Retryable: retryable(err), Err: err}
}

// errReopening is the error of a connection asked for while the store
// reopens the database.
var errReopening = errors.New("duckdb: the database is being reopened")

// errMiscounted is the error of loads into a table whose row count is
// not what the store's loads make it: the store cannot tell whether a
// failed load committed, so it loads nothing more into the table.
var errMiscounted = errors.New("duckdb: table row count not as loaded")

// retryable tells failures that can go away by themselves, see
// ErrRetryable. DuckDB reports a write of its own files that failed as
// an I/O error, or as a commit that failed (a transaction error); a
// checkpoint that failed invalidates the database (an I/O error naming
// it, or a fatal error), which the store reopens.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errMiscounted) {
		return false
	}
	if errors.Is(err, errReopening) {
		return true
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.ENOMEM, syscall.EMFILE, syscall.ENFILE, syscall.EINTR, syscall.EAGAIN:
			return true
		}
		return false
	}
	var de *duck.Error
	if errors.As(err, &de) {
		switch de.Type {
		case duck.ErrorTypeIO, duck.ErrorTypeTransaction, duck.ErrorTypeFatal, duck.ErrorTypeOutOfMemory:
			return true
		}
	}
	return false
}

// invalidated tells an error after which DuckDB refuses every statement
// on the database until it is attached again: a checkpoint that could
// not write the file, or a fatal error.
func invalidated(err error) bool {
	var de *duck.Error
	return errors.As(err, &de) && (de.Type == duck.ErrorTypeFatal || strings.Contains(de.Msg, "has been invalidated"))
}

// isDataError tells conversion and constraint errors (a bad line) from
// failures of the database itself.
func isDataError(err error) bool {
	var de *duck.Error
	if errors.As(err, &de) {
		switch de.Type {
		case duck.ErrorTypeConversion, duck.ErrorTypeConstraint, duck.ErrorTypeInvalidInput, duck.ErrorTypeOutOfRange:
			return true
		}
	}
	return false
}
