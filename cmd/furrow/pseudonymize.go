package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/furrow-io/furrow/internal/app"
	"github.com/furrow-io/furrow/internal/config"
)

// runPseudonymize prints the pseudonym of each value under the configured
// key, one per line, so an analyst can find a user's rows: the values as
// arguments, or one per line of standard input when there are none.
func runPseudonymize(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("furrow pseudonymize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "YAML configuration file (its pseudonymize section names the key)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: furrow pseudonymize [--config FILE] VALUE...\n\nPrints the pseudonym furrow stores for each VALUE (or for each line of standard input),\nunder the key of the configuration's pseudonymize section. The key id goes to standard error.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	if err := cfg.Pseudonymize.Validate(); err != nil {
		return err
	}
	if !cfg.Pseudonymize.Enabled {
		return errors.New("pseudonymization is off in this configuration: set pseudonymize.enabled and a key (pass the file with --config)")
	}
	p, err := app.Policy(cfg, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, "key_id:", p.KeyID())
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	if fs.NArg() > 0 {
		for _, v := range fs.Args() {
			fmt.Fprintln(w, p.Pseudonym(v))
		}
		return nil
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		fmt.Fprintln(w, p.Pseudonym(sc.Text()))
	}
	return sc.Err()
}
