package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// # Destinations
//
// The destinations setting is a list; each item has a name, a type and
// the settings of its type:
//
//	destinations:
//	  - name: warehouse
//	    type: duckdb            # path, schema
//	  - name: pg
//	    type: postgres          # dsn (a Secret), schema
//	    dsn: ${PG_DSN}
//	  - name: lake
//	    type: s3                # bucket, prefix, region, endpoint, credentials, and the object settings
//	    bucket: acme-snowplow
//	    format: parquet
//
// An item's settings decode into its type's struct (DuckDBDestination,
// PostgresDestination, FilesDestination, S3Destination) over that type's
// defaults; a key the type does not have is an unknown setting, as
// anywhere else in the file.
//
// Without a destinations setting, the destinations are what the duckdb
// section says, as before the list existed: one duckdb destination named
// "duckdb" with the section's path and schema, or none with
// duckdb.enabled false (see Config.EffectiveDestinations). With the list,
// the duckdb section still gives threads and nice to every duckdb
// destination, and duckdb.enabled false (--no-duckdb) leaves every duckdb
// destination out; its path and schema must then stay unset (each item
// has its own), which Validate checks.

// The destination types.
const (
	TypeDuckDB   = "duckdb"
	TypePostgres = "postgres"
	TypeFiles    = "files"
	TypeS3       = "s3"
)

// The formats of good events in object storage. Bad rows are always
// gzipped self-describing JSON lines.
const (
	FormatTSV     = "tsv.gz"  // enriched TSV, as Snowplow's S3 loader writes it
	FormatJSON    = "json.gz" // one Analytics SDK JSON event a line
	FormatParquet = "parquet" // typed columns named as the TSV's
)

// Destination is one item of the destinations list: its name and type,
// and the settings of that type in the one field of that type that is
// not nil (all are nil for a type furrow does not know, which Validate
// reports).
type Destination struct {
	// Name names the destination in logs, metrics and commands (furrow
	// snowflake sql --destination NAME): [a-z0-9_-]+, unique.
	Name string `yaml:"-"`
	// Type is duckdb, postgres, files or s3.
	Type string `yaml:"-"`

	DuckDB   *DuckDBDestination   `yaml:"-"`
	Postgres *PostgresDestination `yaml:"-"`
	Files    *FilesDestination    `yaml:"-"`
	S3       *S3Destination       `yaml:"-"`

	decodeErrs []string // see Destinations.UnmarshalYAML
}

// destinationHead is what every item has.
type destinationHead struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
}

// destinationItem is an item as the file has it: the head and the
// type's settings side by side.
type destinationItem[T any] struct {
	Head     destinationHead `yaml:",inline"`
	Settings T               `yaml:",inline"`
}

// Destinations is the destinations setting. Its UnmarshalYAML keeps every
// item, also one with settings that did not decode (yaml.v3 drops a list
// element whose decoding failed), and reports those settings with the
// file's other errors.
type Destinations []Destination

// UnmarshalYAML decodes the items, then returns their settings' errors.
// It uses yaml.v3's older Unmarshaler form, whose decode function is the
// file decoder's own and so refuses unknown keys (see document in
// load.go).
func (l *Destinations) UnmarshalYAML(decode func(any) error) error {
	var items []Destination
	if err := decode(&items); err != nil {
		return err
	}
	var msgs []string
	for i := range items {
		msgs = append(msgs, items[i].decodeErrs...)
		items[i].decodeErrs = nil
	}
	*l = items
	if len(msgs) > 0 {
		return &yaml.TypeError{Errors: msgs}
	}
	return nil
}

// UnmarshalYAML reads an item: its type first, then the whole item into
// that type's settings over their defaults. An item of an unknown or
// missing type keeps only its name and type, for Validate to report. The
// errors of settings that did not decode are kept in the item for
// Destinations.UnmarshalYAML, which reports them: returned here, they
// would make yaml.v3 drop the item.
func (d *Destination) UnmarshalYAML(decode func(any) error) error {
	var raw rawNode
	if err := decode(&raw); err != nil {
		return err
	}
	n := raw.n
	if n == nil || n.Kind != yaml.MappingNode {
		line := 0
		if n != nil {
			line = n.Line
		}
		d.decodeErrs = []string{fmt.Sprintf("line %d: a destination is a mapping: name, type and the type's settings", line)}
		return nil
	}
	typ := ""
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			typ = n.Content[i+1].Value
		}
	}
	var err error
	switch typ {
	case TypeDuckDB:
		var s *DuckDBDestination
		d.Name, d.Type, s, err = decodeItem(decode, DefaultDuckDBDestination())
		d.DuckDB = s
	case TypePostgres:
		var s *PostgresDestination
		d.Name, d.Type, s, err = decodeItem(decode, DefaultPostgresDestination())
		d.Postgres = s
	case TypeFiles:
		var s *FilesDestination
		d.Name, d.Type, s, err = decodeItem(decode, DefaultFilesDestination())
		d.Files = s
	case TypeS3:
		var s *S3Destination
		d.Name, d.Type, s, err = decodeItem(decode, DefaultS3Destination())
		d.S3 = s
	default:
		// The other keys cannot be judged without a type: collect them.
		var x struct {
			Head destinationHead `yaml:",inline"`
			Rest map[string]any  `yaml:",inline"`
		}
		err = decode(&x)
		d.Name, d.Type = x.Head.Name, x.Head.Type
	}
	if te, ok := err.(*yaml.TypeError); ok {
		// The decoder reuses the array behind te.Errors.
		d.decodeErrs = slices.Clone(te.Errors)
		return nil
	}
	return err
}

// decodeItem decodes an item over def. What decoded is kept when some
// settings did not: the decoder reports those with the file's other
// errors.
func decodeItem[T any](decode func(any) error, def T) (name, typ string, s *T, err error) {
	x := destinationItem[T]{Settings: def}
	err = decode(&x)
	return x.Head.Name, x.Head.Type, &x.Settings, err
}

// MarshalYAML writes the item as the file has it: name, type, then the
// type's settings (secrets redacted, as Secret prints).
func (d Destination) MarshalYAML() (any, error) {
	h := destinationHead{Name: d.Name, Type: d.Type}
	switch {
	case d.DuckDB != nil:
		return destinationItem[DuckDBDestination]{h, *d.DuckDB}, nil
	case d.Postgres != nil:
		return destinationItem[PostgresDestination]{h, *d.Postgres}, nil
	case d.Files != nil:
		return destinationItem[FilesDestination]{h, *d.Files}, nil
	case d.S3 != nil:
		return destinationItem[S3Destination]{h, *d.S3}, nil
	}
	return h, nil
}

// Objects is the shared settings of the object destinations (files and
// s3): what they write and how they cut it into objects.
//
// An object's key is <prefix>/<good_prefix>/<partition>/<file> for good
// events and <prefix>/<bad_prefix>/<bad_partition>/<file> for bad rows
// (prefix is s3's; a files destination's path takes its place). The two
// prefixes are fixed paths, so that a reader (a Snowflake stage and
// pipe, an Athena table) can be pointed at each; partitions are templates
// filled in when the object is cut, in UTC:
//
//	{yyyy} {MM} {dd} {HH} {mm}   year, month, day, hour, minute
//	{vendor} {name} {model}      bad rows only: of the bad row's schema, e.g.
//	                             com.snowplowanalytics.snowplow.badrows, schema_violations, 2
type Objects struct {
	// Format of good events: tsv.gz (the default), json.gz or parquet.
	Format       string `yaml:"format"`
	GoodPrefix   string `yaml:"good_prefix"`   // default good
	BadPrefix    string `yaml:"bad_prefix"`    // default bad
	Partition    string `yaml:"partition"`     // default {yyyy}/{MM}/{dd}/{HH}
	BadPartition string `yaml:"bad_partition"` // default {vendor}.{name}/model={model}/{yyyy}/{MM}/{dd}/{HH}
	// An object is cut once it holds MaxBytes (compressed; default 64MiB)
	// or its first event is MaxDelay old (default 2m), whichever comes
	// first, as Snowplow's S3 loader does.
	MaxBytes ByteSize      `yaml:"max_bytes"`
	MaxDelay time.Duration `yaml:"max_delay"`
}

// DefaultObjects is the object settings' defaults.
func DefaultObjects() Objects {
	return Objects{
		Format:       FormatTSV,
		GoodPrefix:   "good",
		BadPrefix:    "bad",
		Partition:    "{yyyy}/{MM}/{dd}/{HH}",
		BadPartition: "{vendor}.{name}/model={model}/{yyyy}/{MM}/{dd}/{HH}",
		MaxBytes:     64 << 20,
		MaxDelay:     2 * time.Minute,
	}
}

// Placeholders of partition templates.
var (
	timePlaceholders = []string{"yyyy", "MM", "dd", "HH", "mm"}
	badPlaceholders  = []string{"vendor", "name", "model"}
)

// Validate reports the object settings' errors.
func (o *Objects) Validate() error {
	var errs []error
	switch o.Format {
	case FormatTSV, FormatJSON, FormatParquet:
	default:
		errs = append(errs, fmt.Errorf("format: %q is not tsv.gz, json.gz or parquet", o.Format))
	}
	good, errG := fixedPath("good_prefix", o.GoodPrefix)
	bad, errB := fixedPath("bad_prefix", o.BadPrefix)
	errs = append(errs, errG, errB)
	if errG == nil && errB == nil && overlaps(good, bad) {
		errs = append(errs, fmt.Errorf("bad_prefix: %q and good_prefix %q overlap: good events and bad rows need prefixes apart, neither inside the other", o.BadPrefix, o.GoodPrefix))
	}
	errs = append(errs, validateTemplate("partition", o.Partition, timePlaceholders, false))
	errs = append(errs, validateTemplate("bad_partition", o.BadPartition, append(timePlaceholders[:len(timePlaceholders):len(timePlaceholders)], badPlaceholders...), true))
	if o.MaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("max_bytes: %d is not positive", o.MaxBytes))
	}
	if o.MaxDelay <= 0 {
		errs = append(errs, fmt.Errorf("max_delay: %s is not positive", o.MaxDelay))
	}
	return errors.Join(errs...)
}

// fixedPath checks a prefix: a relative path with no placeholders,
// returned without its surrounding slashes.
func fixedPath(name, p string) (string, error) {
	if strings.ContainsAny(p, "{}") {
		return "", fmt.Errorf("%s: %q has a { or }: prefixes are fixed paths (put placeholders in the partition)", name, p)
	}
	if err := relativePath(p); err != nil {
		return "", fmt.Errorf("%s: %q %v", name, p, err)
	}
	return strings.Trim(p, "/"), nil
}

// relativePath checks what is common to prefixes and partitions.
func relativePath(p string) error {
	if strings.HasPrefix(p, "/") {
		return errors.New("starts with /: it is relative to the destination's path or prefix")
	}
	if strings.ContainsRune(p, '\\') {
		return errors.New("has a \\: separate path segments with /")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("has a %q segment", seg)
		}
	}
	return nil
}

// overlaps tells whether one of two slash-trimmed prefixes is the other
// or a directory inside it ("" holds everything).
func overlaps(a, b string) bool {
	return a == b || a == "" || b == "" || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}

var placeholder = regexp.MustCompile(`\{[^{}]*\}`)

// validateTemplate checks a partition template's placeholders. A
// partition may be empty (objects go straight under the prefix).
func validateTemplate(name, t string, allowed []string, bad bool) error {
	if err := relativePath(t); err != nil {
		return fmt.Errorf("%s: %q %v", name, t, err)
	}
	var errs []error
	for _, m := range placeholder.FindAllString(t, -1) {
		p := m[1 : len(m)-1]
		switch {
		case slices.Contains(allowed, p):
		case !bad && slices.Contains(badPlaceholders, p):
			errs = append(errs, fmt.Errorf("%s: %s is for bad_partition only: good events are partitioned by time", name, m))
		default:
			errs = append(errs, fmt.Errorf("%s: %s is not a placeholder (%s)", name, m, "{"+strings.Join(allowed, "} {")+"}"))
		}
	}
	if rest := placeholder.ReplaceAllString(t, ""); strings.ContainsAny(rest, "{}") {
		errs = append(errs, fmt.Errorf("%s: %q has a { or } that is not part of a placeholder", name, t))
	}
	return errors.Join(errs...)
}

// DuckDBDestination is a type: duckdb item.
type DuckDBDestination struct {
	// Path of the database file: default <data_dir>/furrow.duckdb for
	// the first duckdb destination; required for the others. Two duckdb
	// destinations cannot share a file.
	Path   string `yaml:"path"`
	Schema string `yaml:"schema"` // default atomic
}

// DefaultDuckDBDestination is a duckdb item's defaults.
func DefaultDuckDBDestination() DuckDBDestination { return DuckDBDestination{Schema: "atomic"} }

// Validate reports the item's own errors; the path's default and
// uniqueness are Config.Validate's, which sees the whole list.
func (d *DuckDBDestination) Validate() error {
	return validateSchema(d.Schema)
}

// PostgresDestination is a type: postgres item.
type PostgresDestination struct {
	// DSN is a postgres:// URL or a key=value connection string, the
	// password in it: write it as ${NAME} from the environment.
	DSN    Secret `yaml:"dsn"`
	Schema string `yaml:"schema"` // default atomic
}

// DefaultPostgresDestination is a postgres item's defaults.
func DefaultPostgresDestination() PostgresDestination { return PostgresDestination{Schema: "atomic"} }

// Validate reports the item's errors. None quotes the DSN.
func (d *PostgresDestination) Validate() error {
	var errs []error
	dsn := strings.TrimSpace(d.DSN.Value())
	switch {
	case dsn == "":
		errs = append(errs, errors.New("dsn is required (a postgres:// URL or key=value connection string; write it as ${NAME} to keep the password out of the file)"))
	case strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://"):
		// url.Parse's errors quote the URL, password included: not shown.
		if u, err := url.Parse(dsn); err != nil || u.Host == "" && !strings.Contains(dsn, "host=") {
			errs = append(errs, errors.New("dsn: is not a valid postgres:// URL (postgres://user:password@host:port/database)"))
		}
	case !strings.Contains(dsn, "="):
		errs = append(errs, errors.New("dsn: is neither a postgres:// URL nor a key=value connection string"))
	}
	errs = append(errs, validateSchema(d.Schema))
	return errors.Join(errs...)
}

var sqlIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func validateSchema(s string) error {
	if !sqlIdent.MatchString(s) {
		return fmt.Errorf("schema: %q is not a plain SQL name (a letter or _, then letters, digits or _; at most 63)", s)
	}
	return nil
}

// FilesDestination is a type: files item: objects in a local directory.
type FilesDestination struct {
	// Path is the directory the objects go under (created if missing).
	Path    string `yaml:"path"`
	Objects `yaml:",inline"`
}

// DefaultFilesDestination is a files item's defaults.
func DefaultFilesDestination() FilesDestination { return FilesDestination{Objects: DefaultObjects()} }

// Validate reports the item's errors. Whether the directory can be
// written is app.Check's: it reads the disk.
func (d *FilesDestination) Validate() error {
	var errs []error
	switch {
	case d.Path == "":
		errs = append(errs, errors.New("path is required (a local directory)"))
	case strings.Contains(d.Path, "://"):
		errs = append(errs, fmt.Errorf("path: %q is a URL; files writes to a local directory (use type: s3 for a bucket)", d.Path))
	}
	errs = append(errs, d.Objects.Validate())
	return errors.Join(errs...)
}

// S3Destination is a type: s3 item: objects in an S3 bucket, or one of an
// S3-compatible server.
type S3Destination struct {
	Bucket string `yaml:"bucket"`
	// Prefix is the fixed path in the bucket the objects go under; "" for
	// the bucket's root.
	Prefix string `yaml:"prefix"`
	// Region of the bucket; "" leaves it to the AWS chain (AWS_REGION,
	// the profile).
	Region string `yaml:"region"`
	// Endpoint is the URL of an S3-compatible server; "" is AWS.
	Endpoint string `yaml:"endpoint"`
	// AccessKeyID and SecretAccessKey, both or neither: without them the
	// credentials come from the standard AWS chain (environment, profile,
	// instance or task role).
	AccessKeyID     Secret `yaml:"access_key_id"`
	SecretAccessKey Secret `yaml:"secret_access_key"`
	// PathStyle addresses the bucket in the URL's path rather than its
	// host name, as many S3-compatible servers need.
	PathStyle bool `yaml:"path_style"`
	Objects   `yaml:",inline"`
}

// DefaultS3Destination is an s3 item's defaults.
func DefaultS3Destination() S3Destination { return S3Destination{Objects: DefaultObjects()} }

var (
	bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	regionName = regexp.MustCompile(`^[a-z0-9-]+$`)
)

// Validate reports the item's errors. That the bucket exists and the
// credentials are good is the loader's to find out.
func (d *S3Destination) Validate() error {
	var errs []error
	switch {
	case d.Bucket == "":
		errs = append(errs, errors.New("bucket is required"))
	case strings.Contains(d.Bucket, "/"):
		errs = append(errs, fmt.Errorf("bucket: %q is not a bucket name (no s3:// and no path: put the path in prefix)", d.Bucket))
	case !bucketName.MatchString(d.Bucket):
		errs = append(errs, fmt.Errorf("bucket: %q is not a bucket name (3-63 lower-case letters, digits, dots and hyphens)", d.Bucket))
	}
	if _, err := fixedPath("prefix", d.Prefix); err != nil {
		errs = append(errs, err)
	}
	if d.Region != "" && !regionName.MatchString(d.Region) {
		errs = append(errs, fmt.Errorf("region: %q is not a region name (e.g. eu-west-1)", d.Region))
	}
	if d.Endpoint != "" {
		u, err := url.Parse(d.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("endpoint: %q is not an http:// or https:// URL", d.Endpoint))
		}
	}
	if (d.AccessKeyID == "") != (d.SecretAccessKey == "") {
		errs = append(errs, errors.New("access_key_id and secret_access_key: give both, or neither to use the standard AWS credential chain"))
	}
	errs = append(errs, d.Objects.Validate())
	return errors.Join(errs...)
}

// ObjectSettings is the object settings of a files or s3 destination, nil
// for the other types.
func (d *Destination) ObjectSettings() *Objects {
	switch {
	case d.Files != nil:
		return &d.Files.Objects
	case d.S3 != nil:
		return &d.S3.Objects
	}
	return nil
}

var destinationName = regexp.MustCompile(`^[a-z0-9_-]+$`)

// Validate reports the item's own errors, each naming its setting
// relative to the item ("format: ..."); Config.Validate names the item.
func (d *Destination) Validate() error {
	var errs []error
	switch {
	case d.Name == "":
		errs = append(errs, errors.New("name is required ([a-z0-9_-]+)"))
	case !destinationName.MatchString(d.Name):
		errs = append(errs, fmt.Errorf("name: %q is not lower-case letters, digits, _ and - ([a-z0-9_-]+)", d.Name))
	}
	switch {
	case d.DuckDB != nil:
		errs = append(errs, d.DuckDB.Validate())
	case d.Postgres != nil:
		errs = append(errs, d.Postgres.Validate())
	case d.Files != nil:
		errs = append(errs, d.Files.Validate())
	case d.S3 != nil:
		errs = append(errs, d.S3.Validate())
	case d.Type == "":
		errs = append(errs, errors.New("type is required (duckdb, postgres, files or s3)"))
	default:
		errs = append(errs, fmt.Errorf("type: %q is not duckdb, postgres, files or s3", d.Type))
	}
	return errors.Join(errs...)
}

// label names the i-th item in errors: destinations[1] (name "lake").
func (d *Destination) label(i int) string {
	if d.Name == "" {
		return fmt.Sprintf("destinations[%d]", i)
	}
	return fmt.Sprintf("destinations[%d] (name %q)", i, d.Name)
}

// validateDestinations reports the errors of the destinations setting:
// each item's, then what concerns several items or the duckdb section.
func (c *Config) validateDestinations() []error {
	if c.Destinations == nil {
		return nil
	}
	var errs []error
	def := DefaultDuckDBConfig()
	if c.DuckDB.Path != "" {
		errs = append(errs, errors.New("duckdb.path: with destinations set, give each duckdb destination its path there (the duckdb section then only gives threads, nice and enabled)"))
	}
	if c.DuckDB.Schema != def.Schema {
		errs = append(errs, errors.New("duckdb.schema: with destinations set, give each duckdb destination its schema there (the duckdb section then only gives threads, nice and enabled)"))
	}
	if len(c.Destinations) == 0 {
		errs = append(errs, errors.New("destinations: the list is empty: leave it out to load into DuckDB as the duckdb section says, or set duckdb.enabled: false to load nowhere"))
	}
	names := map[string]int{}
	paths := map[string]int{}
	var places []objectPlace
	firstDuck := true
	for i := range c.Destinations {
		d := &c.Destinations[i]
		label := d.label(i)
		errs = append(errs, within(label, d.Validate())...)
		if d.Name != "" {
			if j, ok := names[d.Name]; ok {
				errs = append(errs, fmt.Errorf("%s.name: %q is also destinations[%d]'s: names are unique", label, d.Name, j))
			} else {
				names[d.Name] = i
			}
		}
		if d.DuckDB != nil {
			p := d.DuckDB.Path
			if p == "" && firstDuck {
				p = filepath.Join(c.DataDir, "furrow.duckdb")
			}
			if p == "" {
				errs = append(errs, fmt.Errorf("%s.path is required: only the first duckdb destination defaults to <data_dir>/furrow.duckdb", label))
			} else if j, ok := paths[filepath.Clean(p)]; ok {
				errs = append(errs, fmt.Errorf("%s.path: %q is also %s's: DuckDB opens a file for one writer", label, p, c.Destinations[j].label(j)))
			} else {
				paths[filepath.Clean(p)] = i
			}
			firstDuck = false
		}
		if p, ok := d.place(); ok {
			for _, q := range places {
				if q.store == p.store && overlaps(q.path, p.path) {
					errs = append(errs, fmt.Errorf("%s: writes where %s does (%s and %s): object destinations need places apart, neither inside the other", label, c.Destinations[q.i].label(q.i), p.where, q.where))
					break
				}
			}
			p.i = i
			places = append(places, p)
		}
	}
	return errs
}

// objectPlace is where an object destination writes: a store (a local
// directory tree, or a bucket of an endpoint) and a path in it, compared
// by segments.
type objectPlace struct {
	store, path string
	where       string // for the error
	i           int
}

// place is where a files or s3 destination writes. A files path is
// compared cleaned, as written: a relative path and an absolute one are
// not resolved against each other.
func (d *Destination) place() (objectPlace, bool) {
	switch {
	case d.Files != nil && d.Files.Path != "":
		p := filepath.ToSlash(filepath.Clean(d.Files.Path))
		store := "relative"
		if strings.HasPrefix(p, "/") {
			store = "absolute"
		}
		return objectPlace{store: store, path: strings.Trim(p, "/"), where: "directory " + p}, true
	case d.S3 != nil && d.S3.Bucket != "":
		where := "s3://" + d.S3.Bucket + "/" + strings.Trim(d.S3.Prefix, "/")
		if d.S3.Endpoint != "" {
			where += " at " + d.S3.Endpoint
		}
		return objectPlace{store: "s3 " + d.S3.Endpoint + " " + d.S3.Bucket, path: strings.Trim(d.S3.Prefix, "/"), where: where}, true
	}
	return objectPlace{}, false
}

// EffectiveDestinations is where `furrow run` loads: the destinations
// setting, each duckdb destination's path resolved (the first one's
// default, <data_dir>/furrow.duckdb), and none of type duckdb when
// duckdb.enabled is false; without the setting, one duckdb destination
// named "duckdb" with the duckdb section's path and schema, or none when
// that section is disabled. The items are copies: changing them changes
// nothing in c. Call it on a configuration that Validate accepts.
func (c *Config) EffectiveDestinations() []Destination {
	if c.Destinations == nil {
		if !c.DuckDB.Enabled {
			return []Destination{}
		}
		return []Destination{{Name: "duckdb", Type: TypeDuckDB, DuckDB: &DuckDBDestination{Path: c.DuckDBPath(), Schema: c.DuckDB.Schema}}}
	}
	out := make([]Destination, 0, len(c.Destinations))
	firstDuck := true
	for _, d := range c.Destinations {
		switch {
		case d.DuckDB != nil:
			s := *d.DuckDB
			if s.Path == "" && firstDuck {
				s.Path = filepath.Join(c.DataDir, "furrow.duckdb")
			}
			firstDuck = false
			if !c.DuckDB.Enabled {
				continue
			}
			d.DuckDB = &s
		case d.Postgres != nil:
			s := *d.Postgres
			d.Postgres = &s
		case d.Files != nil:
			s := *d.Files
			d.Files = &s
		case d.S3 != nil:
			s := *d.S3
			d.S3 = &s
		}
		out = append(out, d)
	}
	return out
}

// Destination finds a destination of EffectiveDestinations by name.
func (c *Config) Destination(name string) (Destination, bool) {
	for _, d := range c.EffectiveDestinations() {
		if d.Name == name {
			return d, true
		}
	}
	return Destination{}, false
}
