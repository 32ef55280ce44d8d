package iglu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
	"time"
)

// Lookup failure classes, as reported in bad rows.
const (
	FailNotFound = "NotFound"
	FailRepo     = "RepoFailure"
	FailClient   = "ClientFailure"
)

// LookupFailure is one failed lookup in one repository.
type LookupFailure struct {
	Kind    string // FailNotFound, FailRepo or FailClient
	Message string
}

func (f *LookupFailure) Error() string {
	if f.Message == "" {
		return f.Kind
	}
	return f.Kind + ": " + f.Message
}

// ErrNotFound is the LookupFailure a repository returns for a missing schema.
var ErrNotFound = &LookupFailure{Kind: FailNotFound}

// Repository fetches raw schema documents.
type Repository interface {
	Name() string
	// Class orders repositories of equal prefix match: lower first.
	// Local repositories (0) are asked before HTTP ones (1).
	Class() int
	Priority() int
	VendorPrefixes() []string
	// Lookup returns the schema JSON or a *LookupFailure.
	Lookup(ctx context.Context, key SchemaKey) ([]byte, error)
}

type repoMeta struct {
	name     string
	priority int
	prefixes []string
}

func (m repoMeta) Name() string             { return m.name }
func (m repoMeta) Priority() int            { return m.priority }
func (m repoMeta) VendorPrefixes() []string { return m.prefixes }

// FSRepo serves a static repository layout, schemas/<vendor>/<name>/<format>/<version>,
// from a file system: a directory on disk or the schemas built into furrow.
type FSRepo struct {
	repoMeta
	fsys fs.FS
}

// NewDirRepo reads a static repository from a directory holding schemas/.
func NewDirRepo(name, dir string, priority int, vendorPrefixes []string) (*FSRepo, error) {
	st, err := os.Stat(path.Join(dir, "schemas"))
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("iglu repository %q: %s has no schemas/ directory", name, dir)
	}
	return &FSRepo{repoMeta{name, priority, vendorPrefixes}, os.DirFS(dir)}, nil
}

// NewFSRepo serves a static repository from fsys (which holds schemas/).
func NewFSRepo(name string, fsys fs.FS, priority int, vendorPrefixes []string) *FSRepo {
	return &FSRepo{repoMeta{name, priority, vendorPrefixes}, fsys}
}

func (r *FSRepo) Class() int { return 0 }

func (r *FSRepo) Lookup(_ context.Context, key SchemaKey) ([]byte, error) {
	b, err := fs.ReadFile(r.fsys, "schemas/"+key.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, &LookupFailure{FailRepo, err.Error()}
	}
	return b, nil
}

// HTTPRepo is a static HTTP repository or an Iglu Server (whose URI ends in /api).
type HTTPRepo struct {
	repoMeta
	base   string
	apiKey string
	client *http.Client
}

// NewHTTPRepo returns a repository that GETs {uri}/schemas/{path}.
func NewHTTPRepo(name, uri, apiKey string, priority int, vendorPrefixes []string, client *http.Client) *HTTPRepo {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &HTTPRepo{repoMeta{name, priority, vendorPrefixes}, strings.TrimRight(uri, "/"), apiKey, client}
}

func (r *HTTPRepo) Class() int { return 1 }

func (r *HTTPRepo) Lookup(ctx context.Context, key SchemaKey) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/schemas/"+key.Path(), nil)
	if err != nil {
		return nil, &LookupFailure{FailClient, err.Error()}
	}
	if r.apiKey != "" {
		req.Header.Set("apikey", r.apiKey)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, &LookupFailure{FailRepo, err.Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, ErrNotFound
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if err != nil {
			return nil, &LookupFailure{FailRepo, err.Error()}
		}
		return body, nil
	case resp.StatusCode >= 500:
		return nil, &LookupFailure{FailRepo, fmt.Sprintf("unexpected HTTP status %d", resp.StatusCode)}
	default:
		return nil, &LookupFailure{FailClient, fmt.Sprintf("unexpected HTTP status %d", resp.StatusCode)}
	}
}
