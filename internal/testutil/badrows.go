package testutil

import (
	"context"
	"testing"

	"github.com/furrow-io/furrow/internal/iglu"
)

// BadRowValidator returns a function that fails the test unless a bad
// row (self-describing JSON) validates against its schema in the static
// Iglu repository dir (the tests use testdata/iglu-central, Iglu
// Central's own schemas).
func BadRowValidator(t testing.TB, dir string) func([]byte) {
	t.Helper()
	repo, err := iglu.NewDirRepo("central", dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := iglu.NewResolver(iglu.ResolverOptions{Repositories: []iglu.Repository{repo}})
	return func(row []byte) {
		t.Helper()
		sdj, err := iglu.ParseSelfDescribing(row)
		if err != nil {
			t.Fatal(err)
		}
		s, err := r.Lookup(context.Background(), sdj.Key)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := iglu.Decode(sdj.Data)
		if err := s.Validate(v); err != nil {
			t.Fatalf("%v\n%s", err, row)
		}
	}
}
