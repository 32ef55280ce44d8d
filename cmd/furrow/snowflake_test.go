package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "furrow.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const destinationsYAML = `
destinations:
  - name: warehouse
    type: duckdb
  - name: pg
    type: postgres
    dsn: ${FURROW_TEST_PG_DSN}
  - name: lake
    type: s3
    bucket: acme-snowplow
    prefix: furrow
    access_key_id: AKIDEXAMPLE
    secret_access_key: ${FURROW_TEST_S3_SECRET}
    format: parquet
  - name: dir
    type: files
    path: /srv/furrow
  - name: rel
    type: files
    path: relative/dir
`

func TestSnowflakeSQL(t *testing.T) {
	t.Setenv("FURROW_TEST_PG_DSN", "postgres://loader:pa55w0rd-x@db.internal:5432/snowplow")
	t.Setenv("FURROW_TEST_S3_SECRET", "wJalrXUtnFEMI")
	file := writeConfig(t, destinationsYAML)
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string // "" for success
		want    string // in stdout
	}{
		{"s3", []string{"sql", "--config", file, "--destination", "lake"}, "", `CREATE PIPE IF NOT EXISTS "SNOWPLOW"."ATOMIC"."EVENTS_PIPE"`},
		{"files", []string{"sql", "--config", file, "--destination", "dir"}, "", `CREATE STAGE IF NOT EXISTS "SNOWPLOW"."ATOMIC"."FURROW_DIR";`},
		{"relative path", []string{"sql", "--config", file, "--destination", "rel"}, "", "PUT 'file://" + filepath.Join(cwd(t), "relative/dir") + "/good/<partition>/*'"},
		{"names", []string{"sql", "--config", file, "--destination", "lake", "--database", "raw", "--schema", "snowplow", "--role-arn", "arn:aws:iam::1:role/r"}, "", `STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::1:role/r'`},
		{"missing destination", []string{"sql", "--config", file, "--destination", "nope"}, `no destination "nope" in ` + file + `; it has: warehouse (duckdb), pg (postgres), lake (s3), dir (files), rel (files)`, ""},
		{"postgres", []string{"sql", "--config", file, "--destination", "pg"}, `destination "pg" is of type postgres: Snowflake loads the objects of a files or s3 destination`, ""},
		{"duckdb", []string{"sql", "--config", file, "--destination", "warehouse"}, `destination "warehouse" is of type duckdb`, ""},
		{"default configuration", []string{"sql", "--destination", "duckdb"}, `destination "duckdb" is of type duckdb`, ""},
		{"no --destination", []string{"sql", "--config", file}, "--destination is required", ""},
		{"bad name", []string{"sql", "--config", file, "--destination", "lake", "--table", "a;b"}, `table name "a;b" is not a plain identifier`, ""},
		{"no command", nil, "the only command is sql", ""},
		{"help", []string{"sql", "-h"}, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), append([]string{"snowflake"}, tt.args...), &out, &errb)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("%v\n%s", err, errb.String())
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out.String())
			}
			for _, secret := range []string{"pa55w0rd-x", "AKIDEXAMPLE", "wJalrXUtnFEMI"} {
				if strings.Contains(out.String()+errb.String(), secret) {
					t.Errorf("output shows %s", secret)
				}
			}
		})
	}
}

// `furrow config` prints the destinations with their secrets redacted:
// not the DSN's password, nor any of the DSN.
func TestConfigRedactsDestinationSecrets(t *testing.T) {
	t.Setenv("FURROW_TEST_PG_DSN", "postgres://loader:pa55w0rd-x@db.internal:5432/snowplow")
	t.Setenv("FURROW_TEST_S3_SECRET", "wJalrXUtnFEMI")
	file := writeConfig(t, destinationsYAML)
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"config", "--config", file}, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	for _, secret := range []string{"pa55w0rd-x", "loader:", "db.internal", "AKIDEXAMPLE", "wJalrXUtnFEMI"} {
		if strings.Contains(out.String()+errb.String(), secret) {
			t.Errorf("furrow config shows %q:\n%s", secret, out.String())
		}
	}
	for _, want := range []string{"- name: pg\n", "dsn: '[redacted]'\n", "secret_access_key: '[redacted]'\n", "bucket: acme-snowplow\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("furrow config lacks %q:\n%s", want, out.String())
		}
	}
	// A wrong setting is reported without the DSN either.
	bad := writeConfig(t, strings.Replace(destinationsYAML, "${FURROW_TEST_PG_DSN}", "pa55w0rd-x", 1))
	err := run(context.Background(), []string{"config", "--config", bad}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), `destinations[1] (name "pg").dsn: is neither a postgres:// URL nor a key=value connection string`) || strings.Contains(err.Error(), "pa55w0rd-x") {
		t.Errorf("error %v", err)
	}
}

func cwd(t *testing.T) string {
	t.Helper()
	d, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
