package files

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/analytics"
	"github.com/furrow-io/furrow/internal/loader"
)

// BenchmarkLoadVsGzip loads batches of enriched events and, in the same
// iterations, gzips the same TSV bytes at the same level into a file and
// fsyncs it: the cost of the work itself. It reports both rates and
// their ratio (target: files at least 80% of gzip+write). For json.gz the
// baseline compresses the JSON lines Load writes.
func BenchmarkLoadVsGzip(b *testing.B) {
	for _, tc := range []struct {
		format  string
		trusted bool
	}{{FormatTSV, false}, {FormatTSV, true}, {FormatJSON, true}} {
		b.Run(fmt.Sprintf("%s/trusted=%v", tc.format, tc.trusted), func(b *testing.B) {
			const n = 20000
			good := make([][]byte, n)
			var raw bytes.Buffer
			for i := range good {
				good[i] = line(i, fmt.Sprintf("2026-01-02 03:%02d:%02d.%03d", (i/60)%60, i%60, i%1000))
				out := good[i]
				if tc.format == FormatJSON { // the baseline compresses the bytes written
					var err error
					if out, err = analytics.AppendEventJSON(nil, good[i]); err != nil {
						b.Fatal(err)
					}
				}
				raw.Write(out)
				raw.WriteByte('\n')
			}
			dir := b.TempDir()
			l := open(b, dir, Options{Format: tc.format, Trusted: tc.trusted})
			ctx := context.Background()
			var tLoad, tGzip time.Duration
			var ratios []float64
			b.SetBytes(int64(raw.Len()))
			b.ResetTimer()
			for i := range b.N {
				batch := loader.Batch{Start: int64(i) * n, End: int64(i+1) * n, Good: good}
				t0 := time.Now()
				if err := l.Load(ctx, batch); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := gzipWrite(filepath.Join(dir, fmt.Sprintf("plain-%d.gz", i)), raw.Bytes()); err != nil {
					b.Fatal(err)
				}
				dl, dg := t1.Sub(t0), time.Since(t1)
				tLoad, tGzip = tLoad+dl, tGzip+dg
				ratios = append(ratios, dg.Seconds()/dl.Seconds())
			}
			b.StopTimer()
			load := float64(n*b.N) / tLoad.Seconds()
			gz := float64(n*b.N) / tGzip.Seconds()
			b.ReportMetric(load, "files-events/s")
			b.ReportMetric(gz, "gzip+write-events/s")
			b.ReportMetric(load/gz, "ratio")
			// The machine is shared: the median of each iteration's ratio
			// is less moved by a neighbour's burst than the totals.
			slices.Sort(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "median-ratio")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func gzipWrite(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}
