package duckdb

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/pseudo"
)

// BenchmarkLoadPseudonymized loads a row group of page views with a
// network user id of their own, in clear and pseudonymized (default
// policy, with the key's derived context), to show what pseudonyms cost
// the warehouse.
func BenchmarkLoadPseudonymized(b *testing.B) {
	c := pseudo.Default()
	c.Enabled = true
	p := pseudo.New(c, []byte("a benchmark pseudonymization key!"))
	clear := pageViews(RowGroupRows, 0)
	for i, l := range clear {
		f := strings.Split(string(l), "\t")
		f[event.NetworkUserID] = fmt.Sprintf("6f1d3a52-6c43-4c4b-9b55-%012x", i)
		clear[i] = []byte(strings.Join(f, "\t"))
	}
	pseud := make([][]byte, len(clear))
	for i, l := range clear {
		var f [event.NumFields]string
		copy(f[:], strings.Split(string(l), "\t"))
		p.Fields(&f)
		f[event.DerivedContexts] = p.KeyColumn()
		pseud[i] = []byte(strings.Join(f[:], "\t"))
	}
	for _, tc := range []struct {
		name  string
		lines [][]byte
	}{{"clear", clear}, {"pseudonymized", pseud}} {
		b.Run(tc.name, func(b *testing.B) {
			s := open(b, filepath.Join(b.TempDir(), "f.duckdb"))
			defer s.Close(context.Background())
			b.ResetTimer()
			for range b.N {
				if err := s.Good().Write(context.Background(), tc.lines...); err != nil {
					b.Fatal(err)
				}
				if err := s.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tc.lines)), "ns/event")
		})
	}
}
