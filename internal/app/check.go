package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/enrich"
	"github.com/furrow-io/furrow/internal/iglu"
)

// Check reports every error of cfg that `furrow run` would stop at:
// cfg.Validate's, then those that New would otherwise find only while it
// builds the components (a resolver config that cannot be read, an Iglu
// directory that is not there, a data directory that cannot be created).
// New calls it first, and `furrow config --validate` reports it, so a
// configuration the one accepts the other accepts too.
//
// Check is cheap and changes nothing: it reads files and looks at
// directories, and creates, listens on or connects to nothing.
func Check(cfg config.Config) error {
	errs := []error{cfg.Validate()}
	for _, check := range checks {
		errs = append(errs, check(&cfg))
	}
	return errors.Join(errs...)
}

// checks are Check's checks beyond cfg.Validate, in order. Each returns
// nil or its errors (errors.Join them when several), each naming its
// setting as the file does ("enrich.resolver: ..."). A check must be
// cheap and have no side effect (see Check); add yours here.
var checks = []func(cfg *config.Config) error{
	checkResolver,
	checkIgluDirs,
	checkDataDir,
	checkDuckDBPath,
	checkPseudonymizeKey,
	checkEnrichments,
	checkDestinationPaths,
}

// checkDestinationPaths reports a files destination whose path is
// there and is not a directory; a missing one is created at start.
func checkDestinationPaths(cfg *config.Config) error {
	var errs []error
	for i, d := range cfg.EffectiveDestinations() {
		if d.Files == nil {
			continue
		}
		if fi, err := os.Stat(d.Files.Path); err == nil && !fi.IsDir() {
			errs = append(errs, fmt.Errorf("destinations[%d] (name %q).path: %s is not a directory", i, d.Name, d.Files.Path))
		}
	}
	return errors.Join(errs...)
}

// checkEnrichments loads the enrichment configurations as New does:
// every file's errors, each validated against its schema.
func checkEnrichments(cfg *config.Config) error {
	if cfg.Enrich.EnrichmentsDir == "" || checkResolver(cfg) != nil || checkIgluDirs(cfg) != nil {
		return nil // nothing to check, or the resolver's errors are reported
	}
	r, err := Resolver(cfg)
	if err != nil {
		return nil
	}
	if _, _, err := enrich.LoadEnrichments(context.Background(), cfg.Enrich.EnrichmentsDir, r); err != nil {
		return fmt.Errorf("enrich.enrichments_dir: %w", err)
	}
	return nil
}

// checkPseudonymizeKey reads the pseudonymization key as Policy does
// (Validate has checked that exactly one source is set).
func checkPseudonymizeKey(cfg *config.Config) error {
	if !cfg.Pseudonymize.Enabled || (cfg.Pseudonymize.KeyFile == "") == (cfg.Pseudonymize.KeyEnv == "") {
		return nil
	}
	_, _, err := cfg.Pseudonymize.LoadKey()
	return err
}

// checkResolver reads and parses the resolver config as Resolver does;
// its embedded repositories must have their schemas/ directory.
func checkResolver(cfg *config.Config) error {
	if cfg.Enrich.Resolver == "" {
		return nil
	}
	b, err := os.ReadFile(cfg.Enrich.Resolver)
	if err != nil {
		return fmt.Errorf("enrich.resolver: %w", err)
	}
	if _, err := iglu.ParseResolverConfig(b, nil); err != nil {
		return fmt.Errorf("enrich.resolver: %s: %w", cfg.Enrich.Resolver, err)
	}
	return nil
}

// checkIgluDirs looks for each Iglu directory's schemas/, as Resolver
// does, reporting every one that lacks it.
func checkIgluDirs(cfg *config.Config) error {
	var errs []error
	for i, d := range cfg.Enrich.IgluDirs {
		if _, err := iglu.NewDirRepo(d, d, i+1, nil); err != nil {
			errs = append(errs, fmt.Errorf("enrich.iglu_dirs[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// checkDataDir: New creates the data directory (privateDataDir) and the
// logs in it, so it must be a directory furrow can write to, or one it
// can create.
func checkDataDir(cfg *config.Config) error {
	if cfg.DataDir == "" {
		return nil // Validate's
	}
	if err := creatable(cfg.DataDir); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	return nil
}

// checkDuckDBPath: the warehouse file is created, with its directory,
// unless it exists; it must not be a directory.
func checkDuckDBPath(cfg *config.Config) error {
	if !cfg.DuckDB.Enabled || cfg.DataDir == "" {
		return nil
	}
	p := cfg.DuckDBPath()
	setting := "duckdb.path"
	if cfg.DuckDB.Path == "" {
		setting = "data_dir" // the file is <data_dir>/furrow.duckdb
	}
	if st, err := os.Stat(p); err == nil {
		if st.IsDir() {
			return fmt.Errorf("%s: %s is a directory, not a DuckDB file", setting, p)
		}
		return nil
	}
	if cfg.DuckDB.Path == "" {
		return nil // in the data directory, checked above
	}
	if err := creatable(filepath.Dir(p)); err != nil {
		return fmt.Errorf("%s: %w", setting, err)
	}
	return nil
}

// creatable tells whether dir is a directory furrow can write in, or one
// that MkdirAll could create: its nearest existing ancestor is a
// directory furrow can write in.
func creatable(dir string) error {
	p := dir
	for {
		st, err := os.Stat(p)
		if err == nil {
			if !st.IsDir() {
				if p == dir {
					return fmt.Errorf("%s is not a directory", dir)
				}
				return fmt.Errorf("cannot create %s: %s is not a directory", dir, p)
			}
			if err := writable(p); err != nil {
				if p == dir {
					return fmt.Errorf("%s: cannot write in it: %w", dir, err)
				}
				return fmt.Errorf("cannot create %s: cannot write in %s: %w", dir, p, err)
			}
			return nil
		}
		// Missing, or under something that is not a directory, or not
		// reachable: the nearest ancestor that exists tells why.
		parent := filepath.Dir(p)
		if parent == p {
			return fmt.Errorf("cannot create %s", dir)
		}
		p = parent
	}
}
