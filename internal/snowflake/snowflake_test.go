package snowflake

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/event"
)

var update = flag.Bool("update", false, "rewrite testdata/*.sql from the output")

func s3Dest(format string, set func(*config.S3Destination)) config.Destination {
	s := config.DefaultS3Destination()
	s.Bucket = "acme-snowplow"
	s.Prefix = "furrow/prod"
	s.Format = format
	if set != nil {
		set(&s)
	}
	return config.Destination{Name: "lake", Type: config.TypeS3, S3: &s}
}

func filesDest() config.Destination {
	f := config.DefaultFilesDestination()
	f.Path = "/srv/furrow/objects"
	return config.Destination{Name: "local-dir", Type: config.TypeFiles, Files: &f}
}

func cases() []struct {
	golden string
	d      config.Destination
	n      Names
} {
	withARN := DefaultNames("lake")
	withARN.RoleARN = "arn:aws:iam::123456789012:role/snowflake-furrow"
	return []struct {
		golden string
		d      config.Destination
		n      Names
	}{
		{"s3_tsv", s3Dest(config.FormatTSV, nil), withARN},
		{"s3_parquet", s3Dest(config.FormatParquet, nil), DefaultNames("lake")},
		{"s3_json", s3Dest(config.FormatJSON, nil), DefaultNames("lake")},
		{"s3compat_tsv", s3Dest(config.FormatTSV, func(s *config.S3Destination) {
			s.Endpoint, s.PathStyle = "https://objects.example.com:9000", true
			s.AccessKeyID, s.SecretAccessKey = "AKIDEXAMPLE", "wJalrXUtnFEMI"
		}), DefaultNames("lake")},
		{"files_tsv", filesDest(), DefaultNames("local-dir")},
	}
}

// The statements of each layout, compared with testdata/<case>.sql
// (go test -update rewrites them).
func TestGolden(t *testing.T) {
	for _, c := range cases() {
		t.Run(c.golden, func(t *testing.T) {
			cfg := config.Default()
			cfg.Destinations = config.Destinations{c.d}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("the destination is not valid: %v", err)
			}
			var b strings.Builder
			if err := Write(&b, c.d, c.n); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", c.golden+".sql")
			if *update {
				if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, b.String())
			}
			out := b.String()
			// No secret of the configuration is printed.
			for _, secret := range []string{"AKIDEXAMPLE", "wJalrXUtnFEMI"} {
				if strings.Contains(out, secret) {
					t.Errorf("the statements show %s", secret)
				}
			}
			// Statements end in ; and parentheses balance.
			if strings.Count(out, "(") != strings.Count(out, ")") {
				t.Errorf("%d ( and %d )", strings.Count(out, "("), strings.Count(out, ")"))
			}
		})
	}
}

var (
	copyColumns = regexp.MustCompile(`(?s)COPY INTO "SNOWPLOW"\."ATOMIC"\."EVENTS" \(\n(.*?)\n  \)\n  FROM \(SELECT\n(.*?)\n    FROM `)
	tableCols   = regexp.MustCompile(`(?s)CREATE TABLE IF NOT EXISTS "SNOWPLOW"\."ATOMIC"\."EVENTS" \(\n(.*?)\n  CONSTRAINT`)
)

// The TSV COPY loads $1..$131 into event.Fields' columns, in order, and
// load_tstamp from METADATA$START_SCAN_TIME; the table has those columns
// in that order with Snowplow's Snowflake types.
func TestTSVColumns(t *testing.T) {
	var b strings.Builder
	if err := Write(&b, s3Dest(config.FormatTSV, nil), DefaultNames("lake")); err != nil {
		t.Fatal(err)
	}
	ms := copyColumns.FindAllStringSubmatch(b.String(), -1)
	if len(ms) != 2 { // the pipe and the backfill
		t.Fatalf("%d TSV COPY statements, want 2", len(ms))
	}
	for _, m := range ms {
		cols := strings.Split(m[1], ",\n")
		vals := strings.Split(m[2], ",\n")
		if len(cols) != event.NumFields+1 || len(vals) != event.NumFields+1 {
			t.Fatalf("%d columns and %d values, want %d", len(cols), len(vals), event.NumFields+1)
		}
		for i, f := range event.Fields {
			want := "$" + strconv.Itoa(i+1)
			if f.Type == event.JSON {
				want = "PARSE_JSON(" + want + ")"
			}
			if strings.TrimSpace(cols[i]) != f.Name || strings.TrimSpace(vals[i]) != want {
				t.Errorf("column %d: %s from %s, want %s from %s", i+1, cols[i], vals[i], f.Name, want)
			}
		}
		if strings.TrimSpace(cols[event.NumFields]) != "load_tstamp" || !strings.Contains(vals[event.NumFields], "METADATA$START_SCAN_TIME") {
			t.Errorf("load_tstamp from %s", vals[event.NumFields])
		}
	}
	if strings.Contains(b.String(), "CURRENT_TIMESTAMP AS") || strings.Contains(b.String(), "MATCH_BY_COLUMN_NAME") {
		t.Error("the TSV pipe uses CURRENT_TIMESTAMP or MATCH_BY_COLUMN_NAME")
	}

	m := tableCols.FindStringSubmatch(b.String())
	if m == nil {
		t.Fatal("no events table")
	}
	lines := strings.Split(m[1], ",\n")
	if len(lines) != event.NumFields+1 {
		t.Fatalf("%d table columns", len(lines))
	}
	want := map[string]string{
		"etl_tstamp": "TIMESTAMP_NTZ", "collector_tstamp": "TIMESTAMP_NTZ NOT NULL", "event_id": "VARCHAR NOT NULL",
		"txn_id": "INTEGER", "domain_sessionidx": "SMALLINT", "geo_latitude": "DOUBLE PRECISION", "se_value": "DOUBLE PRECISION",
		"tr_total": "NUMBER(18,2)", "ti_price_base": "NUMBER(18,2)", "br_cookies": "BOOLEAN", "br_colordepth": "VARCHAR",
		"contexts": "VARIANT", "unstruct_event": "VARIANT", "derived_contexts": "VARIANT", "true_tstamp": "TIMESTAMP_NTZ",
		"v_etl": "VARCHAR NOT NULL", "page_urlport": "INTEGER", "dvce_ismobile": "BOOLEAN",
	}
	for i, f := range event.Fields {
		name, typ, _ := strings.Cut(strings.TrimSpace(lines[i]), " ")
		if name != f.Name {
			t.Errorf("table column %d is %s, want %s", i+1, name, f.Name)
		}
		if w, ok := want[name]; ok && typ != w {
			t.Errorf("%s is %s, want %s", name, typ, w)
		}
	}
	if strings.TrimSuffix(strings.TrimSpace(lines[event.NumFields]), ",") != "load_tstamp TIMESTAMP_NTZ" {
		t.Errorf("last column %q", lines[event.NumFields])
	}
}

// Parquet and JSON load by column name, which a transformation would
// forbid: load_tstamp comes from the column's DEFAULT.
func TestMatchByColumnName(t *testing.T) {
	for _, format := range []string{config.FormatParquet, config.FormatJSON} {
		var b strings.Builder
		if err := Write(&b, s3Dest(format, nil), DefaultNames("lake")); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if strings.Count(out, "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE") != 2 {
			t.Errorf("%s: MATCH_BY_COLUMN_NAME %d times, want 2 (pipe and backfill)", format, strings.Count(out, "MATCH_BY_COLUMN_NAME"))
		}
		if strings.Contains(out, `COPY INTO "SNOWPLOW"."ATOMIC"."EVENTS" (`) || !strings.Contains(out, "load_tstamp TIMESTAMP_NTZ DEFAULT SYSDATE()") {
			t.Errorf("%s: a transformation, or no load_tstamp default", format)
		}
		if strings.Count(out, "AUTO_INGEST = TRUE") != 2 {
			t.Errorf("%s: %d auto-ingest pipes", format, strings.Count(out, "AUTO_INGEST = TRUE"))
		}
	}
}

func TestNamesAndErrors(t *testing.T) {
	n := DefaultNames("my-lake")
	if n.Stage != "FURROW_MY_LAKE" || n.Integration != "FURROW_MY_LAKE_S3" || n.Database != "SNOWPLOW" || n.Schema != "ATOMIC" || n.Table != "EVENTS" || n.BadTable != "BAD_ROWS" {
		t.Errorf("default names %+v", n)
	}
	// Names are written upper-cased and quoted: the objects unquoted
	// names resolve to.
	n.Database, n.Table = "raw", "Events"
	var b strings.Builder
	if err := Write(&b, s3Dest(config.FormatTSV, nil), n); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `CREATE TABLE IF NOT EXISTS "RAW"."ATOMIC"."EVENTS" (`) || !strings.Contains(b.String(), `CREATE PIPE IF NOT EXISTS "RAW"."ATOMIC"."EVENTS_PIPE"`) {
		t.Errorf("names not upper-cased and quoted:\n%s", b.String())
	}

	for _, tt := range []struct {
		name string
		set  func(*Names)
		want string
	}{
		{"quote", func(n *Names) { n.Table = `ev"ents` }, `snowflake: table name "ev\"ents" is not a plain identifier`},
		{"dot", func(n *Names) { n.Schema = "a.b" }, `snowflake: schema name "a.b" is not a plain identifier`},
		{"empty", func(n *Names) { n.Stage = "" }, `snowflake: stage name "" is not a plain identifier`},
		{"digit first", func(n *Names) { n.Database = "1db" }, `snowflake: database name "1db" is not a plain identifier`},
		{"space", func(n *Names) { n.Integration = "my int" }, `snowflake: integration name "my int" is not a plain identifier`},
		{"same tables", func(n *Names) { n.BadTable = "events" }, `snowflake: the events and bad rows tables are both "EVENTS"`},
		{"role ARN", func(n *Names) { n.RoleARN = "x'; DROP TABLE t; --" }, `snowflake: role ARN "x'; DROP TABLE t; --" is not an ARN`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := DefaultNames("lake")
			tt.set(&n)
			err := Write(new(strings.Builder), s3Dest(config.FormatTSV, nil), n)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	for _, d := range []config.Destination{
		{Name: "pg", Type: "postgres", Postgres: &config.PostgresDestination{DSN: "host=x", Schema: "atomic"}},
		{Name: "w", Type: "duckdb", DuckDB: &config.DuckDBDestination{Schema: "atomic"}},
	} {
		err := Write(new(strings.Builder), d, DefaultNames(d.Name))
		if err == nil || !strings.Contains(err.Error(), "only files and s3 destinations") {
			t.Errorf("%s: %v", d.Type, err)
		}
	}
}

func TestLiteral(t *testing.T) {
	for in, want := range map[string]string{`s3://a/b/`: `'s3://a/b/'`, `it's`: `'it\'s'`, `a\b`: `'a\\b'`} {
		if got := literal(in); got != want {
			t.Errorf("literal(%q) = %s, want %s", in, got, want)
		}
	}
}
