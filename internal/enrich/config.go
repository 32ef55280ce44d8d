package enrich

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/jsonx"
)

// Loading Snowplow enrichment configurations.
//
// A directory holds *.json files, each one self-describing enrichment
// configuration (as Snowplow Enrich 6 reads its enrichments directory) or
// the wrapper iglu:com.snowplowanalytics.snowplow/enrichments/jsonschema/1-0-0
// whose data is an array of them (as older Enrich took with --enrichments).
// Each configuration is validated against its own schema through the
// resolver, then built by the Constructor registered for its vendor/name.
//
// Where furrow and Enrich differ:
//   - An enrichment furrow does not implement is skipped with a warning
//     Notice (Enrich skips unknown names silently), and its configuration is
//     not validated: its schema may not be reachable offline.
//   - The same enrichment configured twice is an error (Enrich keeps the
//     last one it reads, in directory listing order).
//   - Files are read as JSON; Enrich reads them as HOCON, which also allows
//     comments and ${ENV} substitutions.

// EnrichmentsSchema is the criterion of the wrapper holding a list of
// enrichment configurations.
var EnrichmentsSchema = iglu.MustCriterion("iglu:com.snowplowanalytics.snowplow/enrichments/jsonschema/1-0-*")

// Notice is something about the enrichment configurations worth logging
// at startup that does not stop furrow: a disabled enrichment, or one
// furrow does not implement.
type Notice struct {
	Source  string // file, and [index] inside a wrapper
	Schema  string // the configuration's schema URI
	Level   slog.Level
	Message string
}

func (n Notice) String() string {
	return n.Source + ": " + n.Schema + ": " + n.Message
}

// ConfigError is one thing wrong with the enrichment configurations.
type ConfigError struct {
	Source  string // file, and [index] inside a wrapper
	Schema  string // the configuration's schema URI, when known
	Message string
}

func (e *ConfigError) Error() string {
	if e.Schema == "" {
		return "enrichment config " + e.Source + ": " + e.Message
	}
	return "enrichment config " + e.Source + ": " + e.Schema + ": " + e.Message
}

// LoadEnrichments reads the enrichment configurations in dir and returns
// their steps in the order Snowplow Enrich runs them, what to log about
// them, and every problem found (errors.Join of *ConfigError), not just
// the first. resolver validates each configuration against its schema.
func LoadEnrichments(ctx context.Context, dir string, resolver *iglu.Resolver) ([]Step, []Notice, error) {
	return Loader{Deps: Deps{Resolver: resolver}}.LoadDir(ctx, dir)
}

// Loader loads enrichment configurations with the given dependencies.
type Loader struct {
	Deps Deps
}

// LoadDir is LoadEnrichments with l's dependencies.
func (l Loader) LoadDir(ctx context.Context, dir string) ([]Step, []Notice, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, &ConfigError{Source: dir, Message: "cannot read the enrichments directory: " + err.Error()}
	}
	var files []loadFile
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") || e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			files = append(files, loadFile{name: path, err: err})
			continue
		}
		files = append(files, loadFile{name: path, data: b})
	}
	if len(files) == 0 {
		return nil, []Notice{{Source: dir, Level: slog.LevelWarn, Message: "no enrichment configurations (*.json) in this directory"}}, nil
	}
	return l.load(ctx, files)
}

// LoadFile loads the enrichment configurations in one file's contents;
// name is used in messages.
func (l Loader) LoadFile(ctx context.Context, name string, data []byte) ([]Step, []Notice, error) {
	return l.load(ctx, []loadFile{{name: name, data: data}})
}

type loadFile struct {
	name string
	data []byte
	err  error
}

type loadedStep struct {
	order int
	step  Step
}

// loadRun collects the outcome of one load.
type loadRun struct {
	deps    Deps
	steps   []loadedStep
	notices []Notice
	errs    []error
	seen    map[string]string // vendor/name -> source
}

func (l Loader) load(ctx context.Context, files []loadFile) ([]Step, []Notice, error) {
	d := l.Deps
	if d.Resolver == nil {
		return nil, nil, errors.New("enrich: loading enrichment configurations needs a resolver")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.NewUUID == nil {
		d.NewUUID = uuid.NewString
	}
	r := &loadRun{deps: d, seen: map[string]string{}}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	for _, f := range files {
		if f.err != nil {
			r.fail(f.name, "", "cannot read the file: "+f.err.Error())
			continue
		}
		r.file(ctx, f.name, f.data)
	}
	if len(r.errs) > 0 {
		return nil, r.notices, errors.Join(r.errs...)
	}
	sort.SliceStable(r.steps, func(i, j int) bool { return r.steps[i].order < r.steps[j].order })
	steps := make([]Step, len(r.steps))
	for i, s := range r.steps {
		steps[i] = s.step
	}
	return steps, r.notices, nil
}

func (r *loadRun) fail(source, schema, msg string) {
	r.errs = append(r.errs, &ConfigError{Source: source, Schema: schema, Message: msg})
}

func (r *loadRun) note(source, schema string, level slog.Level, msg string) {
	r.notices = append(r.notices, Notice{Source: source, Schema: schema, Level: level, Message: msg})
}

// file handles one file: a single configuration or the wrapper.
func (r *loadRun) file(ctx context.Context, name string, b []byte) {
	if !jsonx.Valid(b) {
		r.fail(name, "", "not valid JSON: "+jsonSyntaxError(b))
		return
	}
	sdj, err := iglu.ParseSelfDescribing(b)
	if err != nil {
		r.fail(name, "", err.Error()+` (expected {"schema":"iglu:...","data":{...}})`)
		return
	}
	if !EnrichmentsSchema.Matches(sdj.Key) {
		r.config(ctx, name, sdj)
		return
	}
	if !r.validate(ctx, name, sdj) {
		return
	}
	i := 0
	jsonx.Array(sdj.Data, 0, func(item []byte) bool {
		src := fmt.Sprintf("%s[%d]", name, i)
		i++
		inner, err := iglu.ParseSelfDescribing(item)
		if err != nil {
			r.fail(src, "", err.Error())
			return true
		}
		r.config(ctx, src, inner)
		return true
	})
}

// jsonSyntaxError describes where b stops being JSON, as line:column.
func jsonSyntaxError(b []byte) string {
	var v any
	err := json.Unmarshal(b, &v)
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		if err == nil {
			return "invalid JSON"
		}
		return err.Error()
	}
	// Offset counts the bytes read, the offending one included.
	pos := min(max(int(se.Offset)-1, 0), len(b))
	line := 1 + bytes.Count(b[:pos], []byte("\n"))
	col := pos - bytes.LastIndexByte(b[:pos], '\n')
	return fmt.Sprintf("line %d, column %d: %s", line, col, se.Error())
}

// validate checks sdj against its schema, recording every violation.
func (r *loadRun) validate(ctx context.Context, source string, sdj iglu.SelfDescribing) bool {
	uri := sdj.Key.URI()
	schema, err := r.deps.Resolver.Lookup(ctx, sdj.Key)
	if err != nil {
		r.fail(source, uri, "cannot check the configuration: "+err.Error())
		return false
	}
	data, err := iglu.Decode(sdj.Data)
	if err != nil {
		r.fail(source, uri, "data is not JSON: "+err.Error())
		return false
	}
	if err := schema.Validate(data); err != nil {
		var ve *iglu.ValidationError
		if !errors.As(err, &ve) {
			r.fail(source, uri, err.Error())
			return false
		}
		for _, rep := range ve.Reports {
			r.fail(source, uri, "does not match its schema: "+rep.Message)
		}
		return false
	}
	return true
}

// config handles one enrichment configuration.
func (r *loadRun) config(ctx context.Context, source string, sdj iglu.SelfDescribing) {
	uri := sdj.Key.URI()
	name := sdj.Key.Vendor + "/" + sdj.Key.Name
	enabled, params := configHead(sdj.Data)
	build, known := lookupConstructor(name)
	if !known {
		switch _, inOrder := orderOf(name); {
		case !enabled:
			r.note(source, uri, slog.LevelInfo, "disabled, skipped")
		case inOrder:
			r.note(source, uri, slog.LevelWarn, "this Snowplow enrichment is not implemented by furrow: ignored, events are not enriched by it")
		default:
			r.note(source, uri, slog.LevelWarn, "unknown enrichment "+name+": ignored (implemented: "+strings.Join(Registered(), ", ")+")")
		}
		return
	}
	if !r.validate(ctx, source, sdj) {
		return
	}
	if !enabled {
		r.note(source, uri, slog.LevelInfo, "disabled, skipped")
		return
	}
	if prev, dup := r.seen[name]; dup {
		r.fail(source, uri, name+" is configured twice (also in "+prev+"); keep one")
		return
	}
	r.seen[name] = source
	step, err := build(ctx, StepConfig{Key: sdj.Key, Data: sdj.Data, Parameters: params, Source: source, Deps: r.deps})
	if err != nil {
		r.fail(source, uri, err.Error())
		return
	}
	order, _ := orderOf(name)
	r.steps = append(r.steps, loadedStep{order: order, step: step})
}

// configHead reads data.enabled (true when absent or not a boolean) and
// data.parameters.
func configHead(data []byte) (enabled bool, params json.RawMessage) {
	enabled = true
	jsonx.Object(data, jsonx.SkipSpace(data, 0), func(k, v []byte) bool {
		switch string(k) {
		case `"enabled"`:
			enabled = string(v) != "false"
		case `"parameters"`:
			params = v
		}
		return true
	})
	return enabled, params
}
