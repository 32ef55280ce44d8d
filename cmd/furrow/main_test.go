package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/loader/duckdb"
)

func TestSQL(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := duckdb.Open(ctx, duckdb.Options{Path: filepath.Join(dir, "furrow.duckdb"), Processor: badrows.Processor{Artifact: "furrow", Version: "0.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	f := make([]string, event.NumFields)
	f[event.EventID] = "8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11"
	f[event.VCollector], f[event.VEtl] = "c", "e"
	f[event.CollectorTstamp] = "2026-01-02 03:04:05.678"
	f[event.AppID] = "shop"
	f[event.PageTitle] = "Shoes & more"
	f[event.BrViewwidth] = "1200"
	if err := s.Good().Write(ctx, []byte(strings.Join(f, "\t"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil { // loads what is staged
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	err = run(ctx, []string{"sql", "--data-dir", dir,
		"SELECT event_id, app_id, collector_tstamp, br_viewwidth, page_title, user_id FROM atomic.events"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	want := "event_id\tapp_id\tcollector_tstamp\tbr_viewwidth\tpage_title\tuser_id\n" +
		"8c3c4f36-8b3e-4c0c-9b0f-3a0d6c6a2a11\tshop\t2026-01-02 03:04:05.678\t1200\tShoes & more\tNULL\n"
	if out.String() != want {
		t.Errorf("got\n%q\nwant\n%q", out.String(), want)
	}

	// Tabs and newlines inside values are escaped, one row per line.
	out.Reset()
	if err := run(ctx, []string{"sql", "--data-dir", dir, `SELECT E'a\tb\nc' AS s`}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if out.String() != "s\na\\tb\\nc\n" {
		t.Errorf("escaped value %q", out.String())
	}

	// Read-only: writes are refused.
	if err := run(ctx, []string{"sql", "--data-dir", dir, "DELETE FROM atomic.events"}, &out, &errb); err == nil {
		t.Error("a DELETE succeeded on the read-only connection")
	}
	if err := run(ctx, []string{"sql", "--data-dir", t.TempDir(), "SELECT 1"}, &out, &errb); err == nil {
		t.Error("querying a missing warehouse succeeded")
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr bool
		wantOut string
	}{
		{[]string{"version"}, false, "furrow "},
		{[]string{"help"}, false, "Usage:"},
		{[]string{"config", "--listen", "0.0.0.0:9999"}, false, "listen: 0.0.0.0:9999"},
		{[]string{"config", "--log-level", "loud"}, true, ""},
		{[]string{"run", "extra"}, true, ""},
		{[]string{"nope"}, true, ""},
		{nil, true, ""},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		err := run(context.Background(), tt.args, &out, &errb)
		if (err != nil) != tt.wantErr {
			t.Errorf("%v: error %v", tt.args, err)
		}
		if !strings.Contains(out.String(), tt.wantOut) {
			t.Errorf("%v: output %q does not contain %q", tt.args, out.String(), tt.wantOut)
		}
	}
}
