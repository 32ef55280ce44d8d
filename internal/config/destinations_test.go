package config

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDestinationsLoadWithDefaults(t *testing.T) {
	c, err := load(write(t, `
data_dir: /var/lib/furrow
destinations:
  - name: warehouse
    type: duckdb
  - name: second
    type: duckdb
    path: /srv/other.duckdb
    schema: snowplow
  - name: pg
    type: postgres
    dsn: ${PG_DSN}
  - name: local
    type: files
    path: /srv/furrow-files
  - name: lake
    type: s3
    bucket: acme-snowplow
    prefix: furrow/prod
    region: eu-west-1
    endpoint: http://127.0.0.1:7070
    access_key_id: AKIDEXAMPLE
    secret_access_key: ${S3_SECRET}
    path_style: true
    format: parquet
    good_prefix: enriched
    bad_prefix: failed
    partition: date={yyyy}-{MM}-{dd}
    bad_partition: "{vendor}.{name}/{yyyy}{MM}{dd}"
    max_bytes: 16MiB
    max_delay: 30s
`), env(map[string]string{"PG_DSN": "postgres://loader:pa55word@db:5432/snowplow", "S3_SECRET": "wJalrXUtnFEMI"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []Destination{
		{Name: "warehouse", Type: "duckdb", DuckDB: &DuckDBDestination{Path: "/var/lib/furrow/furrow.duckdb", Schema: "atomic"}},
		{Name: "second", Type: "duckdb", DuckDB: &DuckDBDestination{Path: "/srv/other.duckdb", Schema: "snowplow"}},
		{Name: "pg", Type: "postgres", Postgres: &PostgresDestination{DSN: "postgres://loader:pa55word@db:5432/snowplow", Schema: "atomic"}},
		{Name: "local", Type: "files", Files: &FilesDestination{Path: "/srv/furrow-files", Objects: DefaultObjects()}},
		{Name: "lake", Type: "s3", S3: &S3Destination{
			Bucket: "acme-snowplow", Prefix: "furrow/prod", Region: "eu-west-1", Endpoint: "http://127.0.0.1:7070",
			AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI", PathStyle: true,
			Objects: Objects{Format: "parquet", GoodPrefix: "enriched", BadPrefix: "failed", Partition: "date={yyyy}-{MM}-{dd}",
				BadPartition: "{vendor}.{name}/{yyyy}{MM}{dd}", MaxBytes: 16 << 20, MaxDelay: 30 * time.Second},
		}},
	}
	got := c.EffectiveDestinations()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("effective destinations\n%s\nwant\n%s", dump(t, got), dump(t, want))
	}
	// The first duckdb item's default path is resolved in the effective
	// list only: the configuration still says what the file said.
	if c.Destinations[0].DuckDB.Path != "" {
		t.Errorf("EffectiveDestinations changed the configuration: %q", c.Destinations[0].DuckDB.Path)
	}
	if d, ok := c.Destination("lake"); !ok || d.S3 == nil || d.S3.Bucket != "acme-snowplow" {
		t.Errorf("Destination(lake): %+v, %v", d, ok)
	}
	if _, ok := c.Destination("nope"); ok {
		t.Error("Destination(nope) found")
	}
}

func dump(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestObjectDefaults(t *testing.T) {
	o := DefaultObjects()
	want := Objects{Format: "tsv.gz", GoodPrefix: "good", BadPrefix: "bad", Partition: "{yyyy}/{MM}/{dd}/{HH}",
		BadPartition: "{vendor}.{name}/model={model}/{yyyy}/{MM}/{dd}/{HH}", MaxBytes: 64 << 20, MaxDelay: 2 * time.Minute}
	if o != want {
		t.Errorf("defaults %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Error(err)
	}
	for _, d := range []Destination{
		{Name: "a", Type: "s3", S3: &S3Destination{Bucket: "abc", Objects: o}},
		{Name: "b", Type: "files", Files: &FilesDestination{Path: "x", Objects: o}},
		{Name: "c", Type: "postgres", Postgres: &PostgresDestination{DSN: "host=db user=u", Schema: "atomic"}},
		{Name: "d", Type: "duckdb", DuckDB: &DuckDBDestination{Schema: "atomic"}},
	} {
		if err := d.Validate(); err != nil {
			t.Errorf("%s: %v", d.Name, err)
		}
	}
	if DefaultPostgresDestination().Schema != "atomic" || DefaultDuckDBDestination().Schema != "atomic" {
		t.Error("schema defaults")
	}
}

// Without a destinations setting, furrow loads into DuckDB as the duckdb
// section says, as it did before the setting existed.
func TestDestinationsAbsent(t *testing.T) {
	c := Default()
	want := []Destination{{Name: "duckdb", Type: "duckdb", DuckDB: &DuckDBDestination{Path: filepath.Join("furrow-data", "furrow.duckdb"), Schema: "atomic"}}}
	if got := c.EffectiveDestinations(); !reflect.DeepEqual(got, want) {
		t.Errorf("default destinations %s", dump(t, got))
	}
	c.DuckDB.Path, c.DuckDB.Schema = "/x/y.duckdb", "snow"
	if got := c.EffectiveDestinations(); got[0].DuckDB.Path != "/x/y.duckdb" || got[0].DuckDB.Schema != "snow" {
		t.Errorf("from the duckdb section: %s", dump(t, got))
	}
	c.DuckDB.Enabled = false
	if got := c.EffectiveDestinations(); got == nil || len(got) != 0 {
		t.Errorf("duckdb disabled: %#v", got)
	}
	// With the list, duckdb.enabled false (--no-duckdb) leaves out the
	// duckdb items only.
	c = Default()
	c.DuckDB.Enabled = false
	c.Destinations = []Destination{
		{Name: "w", Type: "duckdb", DuckDB: &DuckDBDestination{Schema: "atomic"}},
		{Name: "f", Type: "files", Files: &FilesDestination{Path: "out", Objects: DefaultObjects()}},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.EffectiveDestinations(); len(got) != 1 || got[0].Name != "f" {
		t.Errorf("duckdb disabled with a list: %s", dump(t, got))
	}
}

func TestDestinationsErrors(t *testing.T) {
	s3 := func(set func(*S3Destination)) Destination {
		s := DefaultS3Destination()
		s.Bucket = "acme"
		set(&s)
		return Destination{Name: "lake", Type: "s3", S3: &s}
	}
	files := func(set func(*FilesDestination)) Destination {
		s := DefaultFilesDestination()
		s.Path = "out"
		set(&s)
		return Destination{Name: "lake", Type: "files", Files: &s}
	}
	objects := func(set func(*Objects)) Destination {
		return s3(func(s *S3Destination) { set(&s.Objects) })
	}
	pg := func(dsn, schema string) Destination {
		return Destination{Name: "pg", Type: "postgres", Postgres: &PostgresDestination{DSN: Secret(dsn), Schema: schema}}
	}
	duck := func(name, path string) Destination {
		return Destination{Name: name, Type: "duckdb", DuckDB: &DuckDBDestination{Path: path, Schema: "atomic"}}
	}
	ok := duck("w", "")
	tests := []struct {
		name string
		list []Destination
		set  func(*Config)
		want []string
	}{
		{"empty list", []Destination{}, nil, []string{"destinations: the list is empty: leave it out to load into DuckDB as the duckdb section says, or set duckdb.enabled: false to load nowhere"}},
		{"name required", []Destination{{Type: "duckdb", DuckDB: &DuckDBDestination{Schema: "atomic"}}}, nil, []string{"destinations[0].name is required ([a-z0-9_-]+)"}},
		{"name chars", []Destination{ok, duck("Lake!", "l.duckdb")}, nil, []string{`destinations[1] (name "Lake!").name: "Lake!" is not lower-case letters, digits, _ and - ([a-z0-9_-]+)`}},
		{"name unique", []Destination{ok, pg("host=x", "atomic"), pg("host=y", "atomic")}, nil, []string{`destinations[2] (name "pg").name: "pg" is also destinations[1]'s: names are unique`}},
		{"type required", []Destination{ok, {Name: "x"}}, nil, []string{`destinations[1] (name "x").type is required (duckdb, postgres, files or s3)`}},
		{"type unknown", []Destination{ok, {Name: "x", Type: "bigquery"}}, nil, []string{`destinations[1] (name "x").type: "bigquery" is not duckdb, postgres, files or s3`}},
		{"duckdb schema", []Destination{{Name: "w", Type: "duckdb", DuckDB: &DuckDBDestination{Schema: "a-b"}}}, nil, []string{`destinations[0] (name "w").schema: "a-b" is not a plain SQL name (a letter or _, then letters, digits or _; at most 63)`}},
		{"second duckdb needs a path", []Destination{ok, duck("v", "")}, nil, []string{`destinations[1] (name "v").path is required: only the first duckdb destination defaults to <data_dir>/furrow.duckdb`}},
		{"duckdb path shared with the default", []Destination{ok, duck("v", "./furrow-data/furrow.duckdb")}, nil, []string{`destinations[1] (name "v").path: "./furrow-data/furrow.duckdb" is also destinations[0] (name "w")'s: DuckDB opens a file for one writer`}},
		{"duckdb path shared", []Destination{duck("a", "/d/x.duckdb"), duck("b", "/d//x.duckdb")}, nil, []string{`destinations[1] (name "b").path: "/d//x.duckdb" is also destinations[0] (name "a")'s: DuckDB opens a file for one writer`}},
		{"duckdb.path with the list", []Destination{ok}, func(c *Config) { c.DuckDB.Path = "x.duckdb" }, []string{"duckdb.path: with destinations set, give each duckdb destination its path there (the duckdb section then only gives threads, nice and enabled)"}},
		{"duckdb.schema with the list", []Destination{ok}, func(c *Config) { c.DuckDB.Schema = "s" }, []string{"duckdb.schema: with destinations set, give each duckdb destination its schema there (the duckdb section then only gives threads, nice and enabled)"}},
		{"postgres dsn required", []Destination{pg("", "atomic")}, nil, []string{`destinations[0] (name "pg").dsn is required (a postgres:// URL or key=value connection string; write it as ${NAME} to keep the password out of the file)`}},
		{"postgres dsn not a dsn", []Destination{pg("s3cr3t", "atomic")}, nil, []string{`destinations[0] (name "pg").dsn: is neither a postgres:// URL nor a key=value connection string`}},
		{"postgres dsn bad URL", []Destination{pg("postgres://u:s3cr3t@[::1/db", "atomic")}, nil, []string{`destinations[0] (name "pg").dsn: is not a valid postgres:// URL (postgres://user:password@host:port/database)`}},
		{"postgres schema", []Destination{pg("host=x", "")}, nil, []string{`destinations[0] (name "pg").schema: "" is not a plain SQL name (a letter or _, then letters, digits or _; at most 63)`}},
		{"files path required", []Destination{files(func(f *FilesDestination) { f.Path = "" })}, nil, []string{`destinations[0] (name "lake").path is required (a local directory)`}},
		{"files path URL", []Destination{files(func(f *FilesDestination) { f.Path = "s3://b/p" })}, nil, []string{`destinations[0] (name "lake").path: "s3://b/p" is a URL; files writes to a local directory (use type: s3 for a bucket)`}},
		{"files format", []Destination{files(func(f *FilesDestination) { f.Format = "csv" })}, nil, []string{`destinations[0] (name "lake").format: "csv" is not tsv.gz, json.gz or parquet`}},
		{"format", []Destination{ok, objects(func(o *Objects) { o.Format = "csv" })}, nil, []string{`destinations[1] (name "lake").format: "csv" is not tsv.gz, json.gz or parquet`}},
		{"s3 bucket required", []Destination{s3(func(s *S3Destination) { s.Bucket = "" })}, nil, []string{`destinations[0] (name "lake").bucket is required`}},
		{"s3 bucket URL", []Destination{s3(func(s *S3Destination) { s.Bucket = "s3://acme/x" })}, nil, []string{`destinations[0] (name "lake").bucket: "s3://acme/x" is not a bucket name (no s3:// and no path: put the path in prefix)`}},
		{"s3 bucket name", []Destination{s3(func(s *S3Destination) { s.Bucket = "Acme_Events" })}, nil, []string{`destinations[0] (name "lake").bucket: "Acme_Events" is not a bucket name (3-63 lower-case letters, digits, dots and hyphens)`}},
		{"s3 prefix placeholder", []Destination{s3(func(s *S3Destination) { s.Prefix = "x/{yyyy}" })}, nil, []string{`destinations[0] (name "lake").prefix: "x/{yyyy}" has a { or }: prefixes are fixed paths (put placeholders in the partition)`}},
		{"s3 prefix absolute", []Destination{s3(func(s *S3Destination) { s.Prefix = "/x" })}, nil, []string{`destinations[0] (name "lake").prefix: "/x" starts with /: it is relative to the destination's path or prefix`}},
		{"s3 region", []Destination{s3(func(s *S3Destination) { s.Region = "EU West" })}, nil, []string{`destinations[0] (name "lake").region: "EU West" is not a region name (e.g. eu-west-1)`}},
		{"s3 endpoint", []Destination{s3(func(s *S3Destination) { s.Endpoint = "minio:9000" })}, nil, []string{`destinations[0] (name "lake").endpoint: "minio:9000" is not an http:// or https:// URL`}},
		{"s3 half credentials", []Destination{s3(func(s *S3Destination) { s.AccessKeyID = "AKID" })}, nil, []string{`destinations[0] (name "lake").access_key_id and secret_access_key: give both, or neither to use the standard AWS credential chain`}},
		{"good_prefix placeholder", []Destination{objects(func(o *Objects) { o.GoodPrefix = "good/{yyyy}" })}, nil, []string{`destinations[0] (name "lake").good_prefix: "good/{yyyy}" has a { or }: prefixes are fixed paths (put placeholders in the partition)`}},
		{"bad_prefix dot-dot", []Destination{objects(func(o *Objects) { o.BadPrefix = "../bad" })}, nil, []string{`destinations[0] (name "lake").bad_prefix: "../bad" has a ".." segment`}},
		{"prefixes equal", []Destination{objects(func(o *Objects) { o.BadPrefix = "good/" })}, nil, []string{`destinations[0] (name "lake").bad_prefix: "good/" and good_prefix "good" overlap: good events and bad rows need prefixes apart, neither inside the other`}},
		{"prefix inside the other", []Destination{objects(func(o *Objects) { o.GoodPrefix = "" })}, nil, []string{`destinations[0] (name "lake").bad_prefix: "bad" and good_prefix "" overlap: good events and bad rows need prefixes apart, neither inside the other`}},
		{"partition unknown placeholder", []Destination{objects(func(o *Objects) { o.Partition = "{yyyy}/{ss}" })}, nil, []string{`destinations[0] (name "lake").partition: {ss} is not a placeholder ({yyyy} {MM} {dd} {HH} {mm})`}},
		{"partition bad-only placeholder", []Destination{objects(func(o *Objects) { o.Partition = "{vendor}/{yyyy}" })}, nil, []string{`destinations[0] (name "lake").partition: {vendor} is for bad_partition only: good events are partitioned by time`}},
		{"partition stray brace", []Destination{objects(func(o *Objects) { o.Partition = "{yyyy/{MM}" })}, nil, []string{`destinations[0] (name "lake").partition: "{yyyy/{MM}" has a { or } that is not part of a placeholder`}},
		{"partition absolute", []Destination{objects(func(o *Objects) { o.Partition = "/{yyyy}" })}, nil, []string{`destinations[0] (name "lake").partition: "/{yyyy}" starts with /: it is relative to the destination's path or prefix`}},
		{"bad_partition unknown placeholder", []Destination{objects(func(o *Objects) { o.BadPartition = "{schema}/{yyyy}" })}, nil, []string{`destinations[0] (name "lake").bad_partition: {schema} is not a placeholder ({yyyy} {MM} {dd} {HH} {mm} {vendor} {name} {model})`}},
		{"max_bytes", []Destination{objects(func(o *Objects) { o.MaxBytes = 0 })}, nil, []string{`destinations[0] (name "lake").max_bytes: 0 is not positive`}},
		{"max_delay", []Destination{objects(func(o *Objects) { o.MaxDelay = -time.Second })}, nil, []string{`destinations[0] (name "lake").max_delay: -1s is not positive`}},
		{"same directory", []Destination{files(func(*FilesDestination) {}), {Name: "b", Type: "files", Files: &FilesDestination{Path: "./out/", Objects: DefaultObjects()}}}, nil,
			[]string{`destinations[1] (name "b"): writes where destinations[0] (name "lake") does (directory out and directory out): object destinations need places apart, neither inside the other`}},
		{"directory inside another", []Destination{files(func(f *FilesDestination) { f.Path = "/srv/o" }), {Name: "b", Type: "files", Files: &FilesDestination{Path: "/srv/o/b", Objects: DefaultObjects()}}}, nil,
			[]string{`destinations[1] (name "b"): writes where destinations[0] (name "lake") does (directory /srv/o/b and directory /srv/o): object destinations need places apart, neither inside the other`}},
		{"same bucket, prefix inside another", []Destination{s3(func(s *S3Destination) { s.Prefix = "a" }), {Name: "b", Type: "s3", S3: &S3Destination{Bucket: "acme", Prefix: "a/b", Objects: DefaultObjects()}}}, nil,
			[]string{`destinations[1] (name "b"): writes where destinations[0] (name "lake") does (s3://acme/a/b and s3://acme/a): object destinations need places apart, neither inside the other`}},
		{"every error at once", []Destination{objects(func(o *Objects) { o.Format, o.MaxBytes = "csv", -1 }), {Name: "lake", Type: "x"}}, nil, []string{
			`destinations[0] (name "lake").format: "csv" is not tsv.gz, json.gz or parquet`,
			`destinations[0] (name "lake").max_bytes: -1 is not positive`,
			`destinations[1] (name "lake").type: "x" is not duckdb, postgres, files or s3`,
			`destinations[1] (name "lake").name: "lake" is also destinations[0]'s: names are unique`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Destinations = tt.list
			if tt.set != nil {
				tt.set(&c)
			}
			err := c.Validate()
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			// No error shows a DSN's password.
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("an error shows the DSN: %v", err)
			}
		})
	}
}

// Keys an item's type does not have are unknown settings, named with the
// item's place in the file, as everywhere else.
func TestDestinationsDecodeErrors(t *testing.T) {
	file := write(t, `destinations:
  - name: lake
    type: s3
    bucket: acme
    buckett: acme
    max_delay: soon
  - name: pg
    type: postgres
    dsn: host=db
    path: /x
  - name: odd
    type: bigquery
    project: p
  - name: dir
    type: files
    path: out
    max_bytes: lots
    region: eu-west-1
`)
	c, err := Load(file)
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v, want a *DecodeError", err)
	}
	want := []string{
		file + ":5: destinations[0].buckett: unknown setting",
		file + ":6: destinations[0].max_delay: cannot unmarshal !!str `soon` into time.Duration",
		file + ":10: destinations[1].path: unknown setting",
		file + `:17: destinations[3].max_bytes: "lots" is not a size (a number of bytes, or a number with B, KB, MB, GB, KiB, MiB or GiB)`,
		file + ":18: destinations[3].region: unknown setting",
	}
	var got []string
	for _, e := range de.Errs {
		got = append(got, e.Error())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The rest decoded, for Validate to report the remaining errors.
	if len(c.Destinations) != 4 || c.Destinations[0].S3 == nil || c.Destinations[0].S3.Bucket != "acme" || c.Destinations[0].S3.MaxDelay != 2*time.Minute ||
		c.Destinations[1].Postgres == nil || c.Destinations[1].Postgres.DSN.Value() != "host=db" || c.Destinations[2].Type != "bigquery" {
		t.Fatalf("partial destinations %s", dump(t, c.Destinations))
	}
	verr := c.Validate()
	if verr == nil || !strings.Contains(verr.Error(), `destinations[2] (name "odd").type: "bigquery" is not duckdb, postgres, files or s3`) {
		t.Errorf("Validate: %v", verr)
	}

	for _, tt := range []struct{ name, body, want string }{
		{"an item that is not a mapping", "destinations:\n  - lake\n", ":2: destinations[0]: a destination is a mapping: name, type and the type's settings"},
		{"not a list", "destinations:\n  name: lake\n", "cannot unmarshal !!map into []config.Destination"},
		{"the placeholder of a secret", "destinations:\n  - {name: pg, type: postgres, dsn: '[redacted]'}\n", "[redacted] is what furrow prints in place of a secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(write(t, tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// `furrow config` prints the destinations as the file has them, secrets
// redacted; without secrets, that output loads back the same.
func TestDestinationsPrint(t *testing.T) {
	c := Default()
	c.Destinations = []Destination{
		{Name: "w", Type: "duckdb", DuckDB: &DuckDBDestination{Schema: "atomic"}},
		{Name: "pg", Type: "postgres", Postgres: &PostgresDestination{DSN: "postgres://loader:pa55word@db/snowplow", Schema: "atomic"}},
		{Name: "lake", Type: "s3", S3: &S3Destination{Bucket: "acme", AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI", Objects: DefaultObjects()}},
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, secret := range []string{"pa55word", "loader", "AKIDEXAMPLE", "wJalrXUtnFEMI"} {
		if strings.Contains(out, secret) {
			t.Errorf("printed configuration shows %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"- name: pg\n      type: postgres\n      dsn: '[redacted]'\n      schema: atomic\n", "bucket: acme\n", "format: tsv.gz\n", "max_bytes: 64MiB\n", "max_delay: 2m0s\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("printed configuration lacks %q:\n%s", want, out)
		}
	}

	// Without secrets, a round trip.
	c.Destinations = append(c.Destinations[:1], c.Destinations[2:]...)
	c.Destinations[1].S3.AccessKeyID, c.Destinations[1].S3.SecretAccessKey = "", ""
	c.Destinations = append(c.Destinations, Destination{Name: "dir", Type: "files", Files: &FilesDestination{Path: "out", Objects: DefaultObjects()}})
	b, err = yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(write(t, string(b)))
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(got.Destinations, c.Destinations) {
		t.Errorf("round trip\n%s\nthen\n%s", b, dump(t, got.Destinations))
	}
	// Absent, the setting is not printed, so the output keeps meaning
	// "the duckdb section".
	if b, _ := yaml.Marshal(Default()); strings.Contains(string(b), "destinations") {
		t.Errorf("default configuration prints destinations:\n%s", b)
	}
}

// Object destinations apart from each other are accepted.
func TestObjectPlacesApart(t *testing.T) {
	s3 := func(name, endpoint, bucket, prefix string) Destination {
		return Destination{Name: name, Type: "s3", S3: &S3Destination{Endpoint: endpoint, Bucket: bucket, Prefix: prefix, Objects: DefaultObjects()}}
	}
	files := func(name, path string) Destination {
		return Destination{Name: name, Type: "files", Files: &FilesDestination{Path: path, Objects: DefaultObjects()}}
	}
	for _, list := range [][]Destination{
		{s3("a", "", "acme", "a"), s3("b", "", "acme", "ab")},
		{s3("a", "", "acme", ""), s3("b", "", "other", "")},
		{s3("a", "", "acme", ""), s3("b", "http://127.0.0.1:7070", "acme", "")},
		{files("a", "/srv/o"), files("b", "/srv/o2")},
		{files("a", "srv/o"), files("b", "/srv/o")},
	} {
		c := Default()
		c.Destinations = list
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", dump(t, list), err)
		}
	}
}
