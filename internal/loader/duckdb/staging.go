package duckdb

import (
	"io"
	"os"
)

// file is what the store needs of a staging or load file. *os.File has
// it; tests substitute files whose writes fail.
type file interface {
	io.WriterAt
	io.ReaderAt
	Truncate(size int64) error
	Close() error
}

// createPrivate creates or truncates the file at path, readable and
// writable by its owner only, whatever the umask or the mode of a file
// left there before.
func createPrivate(path string) (file, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// stagingBuffer is how many staged bytes wait in memory before they are
// written to the staging file.
const stagingBuffer = 1 << 20

// staging is a TSV file of rows waiting for a COPY. Its lines are the
// file's first written bytes followed by buf, which add writes out once
// it holds stagingBuffer bytes. A failed write changes nothing that was
// staged: what the file did not take stays in buf, and rollback drops
// the lines of a Write that failed however far they got. The file itself
// matches the lines only after sync.
type staging struct {
	path string
	f    file
	buf  []byte
	// written is how many bytes of the staged lines the file holds.
	// fileEnd is how far the file may extend: beyond written, it holds
	// bytes of lines rolled back or moved out, which sync cuts off.
	written, fileEnd int64
	// For each line: where it ends among the staged bytes, and its
	// number among the lines written to the table (table.written), so
	// that a flush can keep the newest lines back for the next one.
	ends, seqs []int64
}

func openStaging(path string, create func(string) (file, error)) (*staging, error) {
	f, err := create(path)
	if err != nil {
		return nil, err
	}
	return &staging{path: path, f: f, buf: make([]byte, 0, stagingBuffer+64<<10)}, nil
}

// lines is the number of lines staged.
func (st *staging) lines() int { return len(st.ends) }

// size is the number of bytes staged.
func (st *staging) size() int64 { return prevEnd(st.ends, len(st.ends)) }

// add stages line. If the write to the file that it may start fails, the
// line is staged anyway: the caller rolls back to before the lines it
// gave up on.
func (st *staging) add(line []byte, seq int64) error {
	st.buf = append(st.buf, line...)
	st.buf = append(st.buf, '\n')
	st.ends = append(st.ends, st.written+int64(len(st.buf)))
	st.seqs = append(st.seqs, seq)
	if len(st.buf) >= stagingBuffer {
		return st.writeOut()
	}
	return nil
}

// writeOut writes buf to the file. Bytes that a failed write did take
// count as written; the rest stays in buf for the next try.
func (st *staging) writeOut() error {
	n, err := st.f.WriteAt(st.buf, st.written)
	st.written += int64(n)
	st.fileEnd = max(st.fileEnd, st.written)
	if err != nil {
		st.buf = st.buf[:copy(st.buf, st.buf[n:])]
		return err
	}
	if cap(st.buf) > 4*stagingBuffer {
		st.buf = make([]byte, 0, stagingBuffer+64<<10) // after a huge line
	}
	st.buf = st.buf[:0]
	return nil
}

// rollback unstages every line from the lines-th on, wherever its bytes
// are: in buf, or already in the file, to be overwritten or cut off.
func (st *staging) rollback(lines int) {
	size := prevEnd(st.ends, lines)
	st.ends, st.seqs = st.ends[:lines], st.seqs[:lines]
	if size >= st.written {
		st.buf = st.buf[:size-st.written]
		return
	}
	st.written, st.buf = size, st.buf[:0]
}

// sync makes the file hold exactly the staged lines, for a COPY.
func (st *staging) sync() error {
	if len(st.buf) > 0 {
		if err := st.writeOut(); err != nil {
			return err
		}
	}
	if st.fileEnd > st.written {
		if err := st.f.Truncate(st.written); err != nil {
			return err
		}
		st.fileEnd = st.written
	}
	return nil
}

// moveTail moves st's last n lines to the empty staging to; st must be
// synced. On error, both are as they were.
func (st *staging) moveTail(n int, to *staging) error {
	keep := st.lines() - n
	off := prevEnd(st.ends, keep)
	tail := make([]byte, st.size()-off)
	if _, err := st.f.ReadAt(tail, off); err != nil {
		return err
	}
	if len(tail) < stagingBuffer {
		to.buf = append(to.buf, tail...)
	} else {
		// Straight to the file, so that buf keeps its size.
		n, err := to.f.WriteAt(tail, 0)
		to.fileEnd = max(to.fileEnd, int64(n))
		if err != nil {
			to.reset()
			return err
		}
		to.written = int64(n)
	}
	for i := keep; i < st.lines(); i++ {
		to.ends = append(to.ends, st.ends[i]-off)
		to.seqs = append(to.seqs, st.seqs[i])
	}
	// The file keeps the moved bytes until the next sync cuts them off.
	st.ends, st.seqs = st.ends[:keep], st.seqs[:keep]
	st.written = off
	return nil
}

// prevEnd is where line i starts: the end of the line before it.
func prevEnd(ends []int64, i int) int64 {
	if i == 0 {
		return 0
	}
	return ends[i-1]
}

// reset unstages everything and empties the file, giving its space back;
// if the truncation fails, the next sync retries it.
func (st *staging) reset() {
	st.ends, st.seqs = st.ends[:0], st.seqs[:0]
	st.buf, st.written = st.buf[:0], 0
	if st.f.Truncate(0) == nil {
		st.fileEnd = 0
	}
}

func (st *staging) close() {
	st.f.Close()
	os.Remove(st.path)
}
