package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/snowflake"
)

// runSnowflake is `furrow snowflake sql`: print the Snowflake statements
// that load a files or s3 destination's objects. Asked for help, it
// prints the usage and returns nil.
func runSnowflake(args []string, stdout, stderr io.Writer) error {
	err := snowflakeSQL(args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func snowflakeSQL(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "sql" {
		fmt.Fprintln(stderr, "Usage: furrow snowflake sql --destination NAME [--config FILE] [flags]")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return errors.New("furrow snowflake: the only command is sql")
	}
	fs := flag.NewFlagSet("furrow snowflake sql", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "YAML configuration file that has the destination")
	dest := fs.String("destination", "", "name of a files or s3 destination of the configuration (required)")
	// The names' defaults depend on the destination: applied after parsing.
	database := fs.String("database", "", "Snowflake database (default SNOWPLOW)")
	schema := fs.String("schema", "", "Snowflake schema (default ATOMIC)")
	table := fs.String("table", "", "events table (default EVENTS)")
	badTable := fs.String("bad-table", "", "bad rows table (default BAD_ROWS)")
	stage := fs.String("stage", "", "stage (default FURROW_<destination>)")
	integration := fs.String("integration", "", "storage integration (default FURROW_<destination>_S3)")
	formats := fs.String("format-prefix", "", "start of the file formats' names (default FURROW)")
	roleARN := fs.String("role-arn", "", "AWS role Snowflake assumes to read the bucket (default: a placeholder to replace)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: furrow snowflake sql --destination NAME [--config FILE] [flags]

Prints the Snowflake statements that load the objects of a files or s3
destination: storage integration, file formats, stage, events and bad_rows
tables, Snowpipes with auto-ingest, and the backfill COPY statements, with
the AWS steps between them as comments. Nothing is run.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *dest == "" {
		fs.Usage()
		return errors.New("furrow snowflake sql: --destination is required")
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	d, ok := cfg.Destination(*dest)
	if !ok {
		var names []string
		for _, d := range cfg.EffectiveDestinations() {
			names = append(names, d.Name+" ("+d.Type+")")
		}
		where := "the default configuration"
		if *file != "" {
			where = *file
		}
		return fmt.Errorf("no destination %q in %s; it has: %s", *dest, where, strings.Join(names, ", "))
	}
	if d.ObjectSettings() == nil {
		return fmt.Errorf("destination %q is of type %s: Snowflake loads the objects of a files or s3 destination", d.Name, d.Type)
	}
	// PUT takes an absolute file:// path.
	if d.Files != nil && !filepath.IsAbs(d.Files.Path) {
		abs, err := filepath.Abs(d.Files.Path)
		if err != nil {
			return fmt.Errorf("destination %q: path %s: %w", d.Name, d.Files.Path, err)
		}
		d.Files.Path = abs
	}
	n := snowflake.DefaultNames(d.Name)
	for _, o := range []struct {
		to   *string
		flag string
	}{
		{&n.Database, *database}, {&n.Schema, *schema}, {&n.Table, *table}, {&n.BadTable, *badTable},
		{&n.Stage, *stage}, {&n.Integration, *integration}, {&n.FormatPrefix, *formats}, {&n.RoleARN, *roleARN},
	} {
		if o.flag != "" {
			*o.to = o.flag
		}
	}
	return snowflake.Write(stdout, d, n)
}
