package wal

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// DamageKind says what happened to a stretch of the log.
type DamageKind string

const (
	// Skipped: a reader passed bytes that hold no valid record (a flipped
	// bit, a cut or overwritten record) and saved them in quarantine.
	// The records before and after them were read.
	Skipped DamageKind = "skipped"
	// Cut: Open removed the incomplete or damaged bytes at the end of the
	// active segment, after which no valid record follows (a torn write),
	// and saved them in quarantine.
	Cut DamageKind = "cut"
	// Missing: the bytes are gone from the disk (a deleted or truncated
	// segment, or a reader's offset before the start of the log or past
	// its end); whatever records they held are lost.
	Missing DamageKind = "missing"
)

// Damage describes bytes of the log that furrow gave up on: never part
// of a valid record, or no longer on disk.
type Damage struct {
	Kind DamageKind
	Dir  string // the log's directory
	// Reader is the reader that skipped the bytes, "" for Open's repairs.
	Reader string
	// Offset and Length place the bytes in the log's offsets.
	Offset, Length int64
	// Segment is the segment file that held them ("" if Missing).
	Segment string
	// Reason says what was wrong, e.g. "payload checksum mismatch".
	Reason string
	// Quarantine is the file holding the bytes ("" if Missing).
	Quarantine string
	// Head is the first bytes, up to DamageHeadBytes, for a report.
	Head []byte
}

// DamageHeadBytes bounds Damage.Head; the whole is in Quarantine.
const DamageHeadBytes = 64 << 10

func (d Damage) String() string {
	s := fmt.Sprintf("wal %s: %s %d bytes at offset %d", d.Dir, d.Kind, d.Length, d.Offset)
	if d.Segment != "" {
		s += " of " + filepath.Base(d.Segment)
	}
	if d.Reason != "" {
		s += " (" + d.Reason + ")"
	}
	if d.Quarantine != "" {
		s += "; bytes saved in " + d.Quarantine
	}
	return s
}

func quarantineDir(dir string) string { return filepath.Join(dir, "quarantine") }

// quarantine copies length bytes at off of f (a segment whose base is
// base) to a file in the quarantine directory named after their offset
// and length, synced, and fills in d's Quarantine and Head. The name is
// the same each time, so a reader that skips the same bytes again after a
// restart writes the same file.
func quarantine(d *Damage, f io.ReaderAt, base int64) error {
	dir := quarantineDir(d.Dir)
	if err := mkdirPrivate(dir); err != nil {
		return err
	}
	path := filepath.Join(dir, fmt.Sprintf("%020d-%d.bin", d.Offset, d.Length))
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, filePerm)
	if err != nil {
		return err
	}
	src := io.NewSectionReader(f, d.Offset-base, d.Length)
	head := make([]byte, min(d.Length, DamageHeadBytes))
	if _, err := io.ReadFull(src, head); err != nil {
		out.Close()
		return fmt.Errorf("wal: read damaged bytes at %d: %w", d.Offset, err)
	}
	_, err = out.Write(head)
	if err == nil {
		_, err = io.Copy(out, src)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("wal: quarantine %s: %w", path, err)
	}
	d.Quarantine, d.Head = path, head
	return nil
}

// File modes: furrow's data is readable by its own user only, whatever
// the umask.
const (
	filePerm = 0o600
	dirPerm  = 0o700
)

// mkdirPrivate creates dir (and parents) with dirPerm and sets dirPerm
// on dir even if it existed with a wider mode.
func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return err
	}
	return os.Chmod(dir, dirPerm)
}
