package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/furrow-io/furrow/internal/loader"
)

// Store is where the files destination puts its objects: a local
// directory today, an S3 bucket later. Keys are relative, "/"-separated
// paths (no empty, "." or ".." segment).
//
// Put stores r's bytes under key, replacing any object there, and makes
// them durable before it returns; readers see the old object or the
// whole new one, never a part (write-then-rename; S3's PutObject or a
// completed multipart upload). Get returns a whole object, an error
// matching fs.ErrNotExist if there is none; it is used only for the
// destination's small state object. List returns the keys under prefix,
// sorted, without incomplete objects. Delete removes an object; a
// missing one is not an error.
//
// Errors worth retrying (a full disk, a timeout, throttling) wrap
// loader.ErrRetryable.
type Store interface {
	Put(ctx context.Context, key string, r io.Reader) error
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix string) ([]string, error)
	Delete(ctx context.Context, key string) error
}

// tmpPrefix starts the names of files a Dir is still writing.
const tmpPrefix = ".furrow-tmp-"

// Dir is a Store in a local directory: key "a/b/c" is the file
// root/a/b/c. Objects are written to a temporary file in the same
// directory, synced, renamed into place, and the directory is synced, so
// an object appears only complete and survives a power cut once Put
// returned.
type Dir struct {
	root string
	// crashBeforeRename makes Put stop after writing and syncing the
	// temporary file, leaving it behind as a crash would (tests).
	crashBeforeRename bool
}

var errCrash = errors.New("simulated crash before rename")

// OpenDir opens (creating it if missing) a directory store and removes
// temporary files left by a crash in the middle of a Put. A directory
// belongs to one destination: another writer's files in progress would
// be removed too.
func OpenDir(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("files: empty directory path")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, classify(fmt.Errorf("files: create %s: %w", root, err))
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), tmpPrefix) {
			return os.Remove(p)
		}
		return nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("files: remove incomplete objects in %s: %w", root, err))
	}
	return &Dir{root: root}, nil
}

// checkKey refuses keys that are not a clean relative path, or that name
// a temporary file.
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("files: invalid key %q", key)
	}
	if err := checkPath(key); err != nil {
		return fmt.Errorf("files: invalid key %q: %w", key, err)
	}
	if strings.HasPrefix(key[strings.LastIndexByte(key, '/')+1:], tmpPrefix) {
		return fmt.Errorf("files: invalid key %q: %s names are reserved", key, tmpPrefix)
	}
	return nil
}

func (d *Dir) path(key string) string { return filepath.Join(d.root, filepath.FromSlash(key)) }

// Put implements Store.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	final := d.path(key)
	dir := filepath.Dir(final)
	if err := d.mkdirs(dir); err != nil {
		return classify(fmt.Errorf("files: put %s: %w", key, err))
	}
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return classify(fmt.Errorf("files: put %s: %w", key, err))
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return classify(fmt.Errorf("files: put %s: %w", key, err))
	}
	if _, err := io.Copy(f, r); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if d.crashBeforeRename {
		f.Close()
		return errCrash
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return classify(fmt.Errorf("files: put %s: %w", key, err))
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return classify(fmt.Errorf("files: put %s: %w", key, err))
	}
	if err := syncDir(dir); err != nil {
		return classify(fmt.Errorf("files: put %s: %w", key, err))
	}
	return nil
}

// mkdirs creates dir and its missing parents under the root, syncing
// each parent so that the new entries are durable too.
func (d *Dir) mkdirs(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	rel, err := filepath.Rel(d.root, dir)
	if err != nil {
		return err
	}
	cur := d.root
	for seg := range strings.SplitSeq(rel, string(filepath.Separator)) {
		next := filepath.Join(cur, seg)
		err := os.Mkdir(next, 0o755)
		switch {
		case err == nil:
			if err := syncDir(cur); err != nil {
				return err
			}
		case !errors.Is(err, fs.ErrExist):
			return err
		}
		cur = next
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get implements Store.
func (d *Dir) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(d.path(key))
	if err != nil {
		return nil, classify(fmt.Errorf("files: get %s: %w", key, err))
	}
	return b, nil
}

// List implements Store. Temporary files are not listed.
func (d *Dir) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		if k := filepath.ToSlash(rel); strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, classify(fmt.Errorf("files: list %q: %w", prefix, err))
	}
	slices.Sort(keys)
	return keys, nil
}

// Delete implements Store.
func (d *Dir) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	p := d.path(key)
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return classify(fmt.Errorf("files: delete %s: %w", key, err))
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return classify(fmt.Errorf("files: delete %s: %w", key, err))
	}
	return nil
}

// classify marks the errors of a local file system that may go away on
// their own (full disk or quota, I/O errors, too many open files,
// interrupted calls) as retryable. Permission errors and the like are
// permanent: they need someone to act.
func classify(err error) error {
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EMFILE, syscall.ENFILE, syscall.EINTR, syscall.EAGAIN, syscall.EBUSY} {
		if errors.Is(err, e) {
			return loader.Retryable(err)
		}
	}
	return err
}
