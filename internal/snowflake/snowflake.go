// Package snowflake writes the Snowflake SQL that loads the objects of a
// files or s3 destination: storage integration, file formats, stage,
// events and bad_rows tables, Snowpipes and the backfill COPY statements,
// in the order of Snowflake's "Automating Snowpipe for Amazon S3" steps.
// It connects to nothing: the statements are for an administrator to run.
//
// # Layout
//
// events has the 131 enriched columns in TSV order with the types of
// Snowplow's Snowflake loaders (TIMESTAMP_NTZ, INTEGER, SMALLINT for
// domain_sessionidx, DOUBLE PRECISION, NUMBER(18,2) for money, BOOLEAN,
// VARCHAR), then load_tstamp TIMESTAMP_NTZ (UTC). Unlike Snowplow's
// loaders, which replace them by one column per schema, it keeps
// contexts, unstruct_event and derived_contexts:
//   - tsv.gz: VARIANT, parsed from the TSV's JSON (PARSE_JSON), so
//     contexts:data[0]:data:id reads an entity's field;
//   - json.gz: VARIANT; the Analytics SDK shape has no such keys but
//     contexts_<vendor>_<name>_<major> and unstruct_event_<...> ones: add
//     columns of those names (ARRAY, OBJECT) and MATCH_BY_COLUMN_NAME
//     fills them;
//   - parquet: VARCHAR, the JSON text as the Parquet file has it
//     (PARSE_JSON(contexts) to read into it).
//
// The TSV pipe maps $1..$131 to the columns by position and sets
// load_tstamp from METADATA$START_SCAN_TIME, which Snowflake recommends
// over CURRENT_TIMESTAMP in a pipe. MATCH_BY_COLUMN_NAME (json.gz,
// parquet) cannot be combined with a transformation, so there load_tstamp
// is the column's DEFAULT, SYSDATE() (UTC).
//
// bad_rows has "SCHEMA" (the bad row's Iglu URI; SCHEMA is reserved in
// Snowflake, hence the quotes), failure_type (the schema's name, e.g.
// schema_violations), payload (the whole self-describing bad row,
// VARIANT), file_name and load_tstamp, as DuckDB's bad_rows has them.
package snowflake

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/event"
)

// Names are the Snowflake objects the statements create. Each is a plain
// identifier (a letter or _, then letters, digits, _ or $), written
// upper-cased and quoted, so it is the same object as the name unquoted.
type Names struct {
	Database    string // default SNOWPLOW
	Schema      string // default ATOMIC
	Table       string // events; default EVENTS
	BadTable    string // bad rows; default BAD_ROWS
	Stage       string // default FURROW_<destination>
	Integration string // s3 on AWS only; default FURROW_<destination>_S3
	// FormatPrefix starts the file formats' names: <prefix>_TSV,
	// <prefix>_JSON, <prefix>_PARQUET; default FURROW.
	FormatPrefix string
	// RoleARN is the AWS role Snowflake assumes to read the bucket; empty,
	// a placeholder to replace.
	RoleARN string
}

// DefaultNames are the names for a destination: its name upper-cased,
// with - as _, in the stage's and integration's.
func DefaultNames(destination string) Names {
	d := strings.ToUpper(strings.ReplaceAll(destination, "-", "_"))
	return Names{
		Database: "SNOWPLOW", Schema: "ATOMIC", Table: "EVENTS", BadTable: "BAD_ROWS",
		Stage: "FURROW_" + d, Integration: "FURROW_" + d + "_S3", FormatPrefix: "FURROW",
	}
}

// RoleARNPlaceholder stands for Names.RoleARN when it is empty.
const RoleARNPlaceholder = "<arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME>"

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,254}$`)

// Validate reports every name that is not a plain identifier.
func (n Names) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"database", n.Database}, {"schema", n.Schema}, {"table", n.Table}, {"bad table", n.BadTable},
		{"stage", n.Stage}, {"integration", n.Integration}, {"file format prefix", n.FormatPrefix},
	} {
		if !identifier.MatchString(f.v) {
			errs = append(errs, fmt.Errorf("snowflake: %s name %q is not a plain identifier (a letter or _, then letters, digits, _ or $)", f.name, f.v))
		}
	}
	if strings.EqualFold(n.Table, n.BadTable) {
		errs = append(errs, fmt.Errorf("snowflake: the events and bad rows tables are both %q", n.Table))
	}
	if n.RoleARN != "" && (!strings.HasPrefix(n.RoleARN, "arn:") || strings.ContainsAny(n.RoleARN, "'\\\n")) {
		errs = append(errs, fmt.Errorf("snowflake: role ARN %q is not an ARN (arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME)", n.RoleARN))
	}
	return errors.Join(errs...)
}

// ident writes a name as Snowflake resolves it unquoted.
func ident(s string) string { return `"` + strings.ToUpper(s) + `"` }

// literal writes a string constant: \ and ' are escaped.
func literal(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// columnType is the Snowflake type of an events column, as Snowplow's
// Snowflake loaders have it; JSON columns as the package documentation
// says.
func columnType(i int, f event.Field, format string) string {
	switch f.Type {
	case event.Timestamp:
		return "TIMESTAMP_NTZ"
	case event.Int:
		if i == event.DomainSessionIdx {
			return "SMALLINT"
		}
		return "INTEGER"
	case event.Double:
		switch f.Name {
		case "tr_total", "tr_tax", "tr_shipping", "ti_price", "tr_total_base", "tr_tax_base", "tr_shipping_base", "ti_price_base":
			return "NUMBER(18,2)"
		}
		return "DOUBLE PRECISION"
	case event.Bool:
		return "BOOLEAN"
	case event.JSON:
		if format == config.FormatParquet {
			return "VARCHAR"
		}
		return "VARIANT"
	}
	return "VARCHAR"
}

func notNull(i int) bool {
	return i == event.EventID || i == event.VCollector || i == event.VEtl || i == event.CollectorTstamp
}

// script is what Write assembles.
type script struct {
	b       strings.Builder
	d       config.Destination
	n       Names
	o       config.Objects
	step    int
	storage string // "s3" (AWS, integration, auto-ingest), "s3compat", "files"
}

func (s *script) p(format string, args ...any) { fmt.Fprintf(&s.b, format, args...) }

// heading starts a numbered step.
func (s *script) heading(title string) {
	s.step++
	s.p("\n-- %d. %s\n", s.step, title)
}

func (s *script) qualified(name string) string {
	return ident(s.n.Database) + "." + ident(s.n.Schema) + "." + ident(name)
}

// location is the stage's URL (s3, s3compat) or the local directory
// (files), ending in /.
func (s *script) location() string {
	switch {
	case s.d.S3 != nil:
		scheme := "s3://"
		if s.storage == "s3compat" {
			scheme = "s3compat://"
		}
		return scheme + s.d.S3.Bucket + "/" + s.keyPrefix()
	default:
		return strings.TrimRight(s.d.Files.Path, "/") + "/"
	}
}

// keyPrefix is the s3 destination's prefix in the bucket, "" or ending
// in /.
func (s *script) keyPrefix() string {
	if p := strings.Trim(s.d.S3.Prefix, "/"); p != "" {
		return p + "/"
	}
	return ""
}

// under is a stage path for a prefix: @stage/prefix/.
func (s *script) under(prefix string) string {
	p := "@" + s.qualified(s.n.Stage) + "/"
	if t := strings.Trim(prefix, "/"); t != "" {
		p += t + "/"
	}
	return p
}

// Write writes the statements for destination d, which must be of type
// files or s3 and valid (config.Config.Validate), under names n.
func Write(w io.Writer, d config.Destination, n Names) error {
	o := d.ObjectSettings()
	if o == nil {
		return fmt.Errorf("snowflake: destination %q is of type %s: only files and s3 destinations write objects for Snowflake to load", d.Name, d.Type)
	}
	if err := n.Validate(); err != nil {
		return err
	}
	s := &script{d: d, n: n, o: *o, storage: "files"}
	if d.S3 != nil {
		s.storage = "s3"
		if d.S3.Endpoint != "" {
			s.storage = "s3compat"
		}
	}
	s.header()
	if s.storage == "s3" {
		s.integration()
	}
	s.database()
	s.fileFormats()
	s.stage()
	s.tables()
	if s.storage == "s3" {
		s.pipes()
		s.notifications()
	}
	s.backfill()
	_, err := io.WriteString(w, s.b.String())
	return err
}

func (s *script) header() {
	s.p("-- Snowflake statements for furrow destination %q (type %s, format %s).\n", s.d.Name, s.d.Type, s.o.Format)
	s.p("-- Written by `furrow snowflake sql`; the objects are created only if missing, so running it again is safe.\n")
	s.p("-- Good events: %s%s/  Bad rows: %s%s/\n", s.location(), strings.Trim(s.o.GoodPrefix, "/"), s.location(), strings.Trim(s.o.BadPrefix, "/"))
	switch s.storage {
	case "s3":
		s.p("-- Steps as in https://docs.snowflake.com/en/user-guide/data-load-snowpipe-auto-s3\n")
		s.p("--\n-- 0. AWS, before this script: an IAM policy allowing s3:GetObject and s3:GetObjectVersion on\n")
		s.p("--    arn:aws:s3:::%s/%s* and s3:ListBucket and s3:GetBucketLocation on arn:aws:s3:::%s,\n", s.d.S3.Bucket, s.keyPrefix(), s.d.S3.Bucket)
		s.p("--    and an IAM role with that policy (its trust policy is completed in step 2).\n")
	case "s3compat":
		s.p("-- The bucket is on an S3-compatible server (%s): Snowflake reads it through an s3compat stage with\n", s.d.S3.Endpoint)
		s.p("-- credentials, without a storage integration, and Snowpipe's auto-ingest does not apply: run the COPY\n")
		s.p("-- statements of the last step on a schedule (a Snowflake TASK, say); COPY skips the files it has loaded.\n")
	case "files":
		s.p("-- The objects are in a local directory: upload them to the internal stage with PUT (SnowSQL), then\n")
		s.p("-- run the COPY statements of the last step; COPY skips the files it has loaded. Snowpipe's auto-ingest\n")
		s.p("-- needs objects in S3 (a destination of type s3, or a copy of the directory there).\n")
	}
}

func (s *script) integration() {
	s.heading("Storage integration (as ACCOUNTADMIN, or a role with CREATE INTEGRATION)")
	arn := s.n.RoleARN
	if arn == "" {
		arn = RoleARNPlaceholder
	}
	s.p("CREATE STORAGE INTEGRATION IF NOT EXISTS %s\n", ident(s.n.Integration))
	s.p("  TYPE = EXTERNAL_STAGE\n  STORAGE_PROVIDER = 'S3'\n  ENABLED = TRUE\n")
	s.p("  STORAGE_AWS_ROLE_ARN = %s\n", literal(arn))
	s.p("  STORAGE_ALLOWED_LOCATIONS = (%s);\n", literal(s.location()))
	s.heading("The external ID for the role's trust policy")
	s.p("-- DESC INTEGRATION %s;\n", ident(s.n.Integration))
	s.p("-- In AWS, let the role's trust policy allow sts:AssumeRole to the principal STORAGE_AWS_IAM_USER_ARN,\n")
	s.p("-- with the condition sts:ExternalId = STORAGE_AWS_EXTERNAL_ID, both as DESC INTEGRATION shows them.\n")
}

func (s *script) database() {
	s.heading("Database and schema")
	s.p("CREATE DATABASE IF NOT EXISTS %s;\n", ident(s.n.Database))
	s.p("CREATE SCHEMA IF NOT EXISTS %s.%s;\n", ident(s.n.Database), ident(s.n.Schema))
}

func (s *script) format(kind string) string { return s.qualified(s.n.FormatPrefix + "_" + kind) }

func (s *script) fileFormats() {
	s.heading("File formats")
	switch s.o.Format {
	case config.FormatTSV:
		s.p("-- Enriched TSV: never quoted, tabs and newlines inside values already replaced, so no enclosure and no\n")
		s.p("-- escape (a \\ in a URL stays a \\); empty fields are NULL; gzip is detected.\n")
		s.p("CREATE FILE FORMAT IF NOT EXISTS %s\n", s.format("TSV"))
		s.p("  TYPE = CSV\n  FIELD_DELIMITER = '\\t'\n  RECORD_DELIMITER = '\\n'\n  FIELD_OPTIONALLY_ENCLOSED_BY = NONE\n")
		s.p("  ESCAPE_UNENCLOSED_FIELD = NONE\n  EMPTY_FIELD_AS_NULL = TRUE\n  NULL_IF = ()\n  COMPRESSION = AUTO;\n")
	case config.FormatParquet:
		s.p("CREATE FILE FORMAT IF NOT EXISTS %s\n", s.format("PARQUET"))
		s.p("  TYPE = PARQUET\n  USE_LOGICAL_TYPE = TRUE\n  COMPRESSION = AUTO;\n")
	}
	s.p("-- JSON lines, gzipped: bad rows")
	if s.o.Format == config.FormatJSON {
		s.p(", and the good events (one Analytics SDK JSON event a line)")
	}
	s.p(".\nCREATE FILE FORMAT IF NOT EXISTS %s\n", s.format("JSON"))
	s.p("  TYPE = JSON\n  COMPRESSION = AUTO;\n")
}

func (s *script) stage() {
	s.heading("Stage")
	st := s.qualified(s.n.Stage)
	switch s.storage {
	case "s3":
		s.p("CREATE STAGE IF NOT EXISTS %s\n", st)
		s.p("  URL = %s\n  STORAGE_INTEGRATION = %s;\n", literal(s.location()), ident(s.n.Integration))
	case "s3compat":
		s.p("CREATE STAGE IF NOT EXISTS %s\n", st)
		s.p("  URL = %s\n  ENDPOINT = %s\n", literal(s.location()), literal(endpointHost(s.d.S3.Endpoint)))
		s.p("  CREDENTIALS = (AWS_KEY_ID = '<access key id>' AWS_SECRET_KEY = '<secret access key>');\n")
	case "files":
		s.p("CREATE STAGE IF NOT EXISTS %s;\n", st)
		s.p("-- Upload each partition directory, e.g. (SnowSQL; PUT does not descend into directories):\n")
		s.p("-- (the file:// path absolute):\n")
		s.p("--   PUT 'file://%s%s/<partition>/*' %s<partition>/ AUTO_COMPRESS = FALSE;\n", s.location(), strings.Trim(s.o.GoodPrefix, "/"), s.under(s.o.GoodPrefix))
		s.p("--   PUT 'file://%s%s/<partition>/*' %s<partition>/ AUTO_COMPRESS = FALSE;\n", s.location(), strings.Trim(s.o.BadPrefix, "/"), s.under(s.o.BadPrefix))
	}
}

// endpointHost is an endpoint URL's host[:port], as an s3compat stage
// takes it.
func endpointHost(u string) string {
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	host, _, _ := strings.Cut(u, "/")
	return host
}

func (s *script) tables() {
	s.heading("Tables")
	s.p("CREATE TABLE IF NOT EXISTS %s (\n", s.qualified(s.n.Table))
	for i, f := range event.Fields {
		s.p("  %s %s", f.Name, columnType(i, f, s.o.Format))
		if notNull(i) {
			s.p(" NOT NULL")
		}
		s.p(",\n")
	}
	if s.o.Format == config.FormatTSV {
		s.p("  load_tstamp TIMESTAMP_NTZ,\n")
	} else {
		s.p("  load_tstamp TIMESTAMP_NTZ DEFAULT SYSDATE(),\n")
	}
	s.p("  CONSTRAINT event_id_pk PRIMARY KEY (event_id)\n);\n")
	s.p("CREATE TABLE IF NOT EXISTS %s (\n", s.qualified(s.n.BadTable))
	s.p("  \"SCHEMA\" VARCHAR NOT NULL,\n  failure_type VARCHAR NOT NULL,\n  payload VARIANT NOT NULL,\n  file_name VARCHAR,\n  load_tstamp TIMESTAMP_NTZ\n);\n")
}

// loadTime is load_tstamp in a COPY transformation: when the load
// started scanning the file, in UTC.
const loadTime = "CONVERT_TIMEZONE('UTC', METADATA$START_SCAN_TIME)::TIMESTAMP_NTZ"

// goodCopy is the COPY of good events, for the pipe and the backfill.
func (s *script) goodCopy(from string) string {
	var b strings.Builder
	b.WriteString("COPY INTO " + s.qualified(s.n.Table))
	switch s.o.Format {
	case config.FormatTSV:
		b.WriteString(" (\n")
		for _, f := range event.Fields {
			b.WriteString("    " + f.Name + ",\n")
		}
		b.WriteString("    load_tstamp\n  )\n  FROM (SELECT\n")
		for i, f := range event.Fields {
			col := fmt.Sprintf("$%d", i+1)
			if f.Type == event.JSON {
				col = "PARSE_JSON(" + col + ")"
			}
			b.WriteString("    " + col + ",\n")
		}
		b.WriteString("    " + loadTime + "\n")
		b.WriteString("    FROM " + from + ")\n")
		b.WriteString("  FILE_FORMAT = (FORMAT_NAME = " + s.format("TSV") + ")\n")
	case config.FormatParquet:
		b.WriteString("\n  FROM " + from + "\n")
		b.WriteString("  FILE_FORMAT = (FORMAT_NAME = " + s.format("PARQUET") + ")\n")
		b.WriteString("  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE\n")
	case config.FormatJSON:
		b.WriteString("\n  FROM " + from + "\n")
		b.WriteString("  FILE_FORMAT = (FORMAT_NAME = " + s.format("JSON") + ")\n")
		b.WriteString("  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE\n")
	}
	b.WriteString("  ON_ERROR = CONTINUE")
	return b.String()
}

// badCopy is the COPY of bad rows, for the pipe and the backfill.
func (s *script) badCopy(from string) string {
	return "COPY INTO " + s.qualified(s.n.BadTable) + " (\"SCHEMA\", failure_type, payload, file_name, load_tstamp)\n" +
		"  FROM (SELECT\n" +
		"    $1:schema::VARCHAR,\n" +
		"    SPLIT_PART($1:schema::VARCHAR, '/', 2),\n" +
		"    $1,\n" +
		"    METADATA$FILENAME,\n" +
		"    " + loadTime + "\n" +
		"    FROM " + from + ")\n" +
		"  FILE_FORMAT = (FORMAT_NAME = " + s.format("JSON") + ")\n" +
		"  ON_ERROR = CONTINUE"
}

func (s *script) pipe(name string) string { return s.qualified(name + "_PIPE") }

func (s *script) pipes() {
	s.heading("Snowpipes")
	s.p("-- ON_ERROR = CONTINUE loads a file's other rows when one is refused; see what was refused with\n")
	s.p("-- SELECT * FROM TABLE(INFORMATION_SCHEMA.COPY_HISTORY(TABLE_NAME => '%s', START_TIME => DATEADD(hour, -24, CURRENT_TIMESTAMP())));\n", strings.ToUpper(s.n.Table))
	s.p("CREATE PIPE IF NOT EXISTS %s\n  AUTO_INGEST = TRUE\n  AS\n%s;\n", s.pipe(s.n.Table), s.goodCopy(s.under(s.o.GoodPrefix)))
	s.p("CREATE PIPE IF NOT EXISTS %s\n  AUTO_INGEST = TRUE\n  AS\n%s;\n", s.pipe(s.n.BadTable), s.badCopy(s.under(s.o.BadPrefix)))
	s.heading("Permissions, for a role other than the pipes' owner that operates them (replace <role>)")
	s.p("-- GRANT USAGE ON DATABASE %s TO ROLE <role>;\n", ident(s.n.Database))
	s.p("-- GRANT USAGE ON SCHEMA %s.%s TO ROLE <role>;\n", ident(s.n.Database), ident(s.n.Schema))
	s.p("-- GRANT USAGE ON STAGE %s TO ROLE <role>;\n", s.qualified(s.n.Stage))
	s.p("-- GRANT INSERT, SELECT ON TABLE %s TO ROLE <role>;\n", s.qualified(s.n.Table))
	s.p("-- GRANT INSERT, SELECT ON TABLE %s TO ROLE <role>;\n", s.qualified(s.n.BadTable))
	s.p("-- GRANT OPERATE, MONITOR ON PIPE %s TO ROLE <role>;\n", s.pipe(s.n.Table))
	s.p("-- GRANT OPERATE, MONITOR ON PIPE %s TO ROLE <role>;\n", s.pipe(s.n.BadTable))
}

func (s *script) notifications() {
	s.heading("S3 event notifications to Snowpipe's SQS queue")
	s.p("-- SHOW PIPES LIKE '%%_PIPE' IN SCHEMA %s.%s;\n", ident(s.n.Database), ident(s.n.Schema))
	s.p("-- notification_channel is the ARN of the SQS queue Snowflake created for the pipes (both have the same).\n")
	s.p("-- In AWS, add to bucket %s an event notification for s3:ObjectCreated:* on the prefix %q,\n", s.d.S3.Bucket, s.keyPrefix())
	s.p("-- with that queue as its destination. SELECT SYSTEM$PIPE_STATUS('%s.%s.%s_PIPE'); then shows the pipe running.\n",
		strings.ToUpper(s.n.Database), strings.ToUpper(s.n.Schema), strings.ToUpper(s.n.Table))
}

func (s *script) backfill() {
	if s.storage == "s3" {
		s.heading("Backfill: objects written before the notifications were set up, or that failed to load")
		s.p("-- ALTER PIPE ... REFRESH loads what the pipe has not loaded among the files staged in the last 7 days:\n")
		s.p("-- ALTER PIPE %s REFRESH;\n", s.pipe(s.n.Table))
		s.p("-- ALTER PIPE %s REFRESH;\n", s.pipe(s.n.BadTable))
		s.p("-- For older files, run the COPY statements below, restricted to partitions the pipes did not load\n")
		s.p("-- (FROM %s<partition>/). COPY and a pipe keep separate load histories: a COPY over files a pipe\n", s.under(s.o.GoodPrefix))
		s.p("-- loaded loads them again.\n")
	} else {
		s.heading("Load (run again after each upload, or on a schedule: COPY skips the files it has loaded)")
	}
	s.p("%s;\n", s.goodCopy(s.under(s.o.GoodPrefix)))
	s.p("%s;\n", s.badCopy(s.under(s.o.BadPrefix)))
}
