package files

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/testutil"
)

// BenchmarkS3LoadVsGzipPut loads batches of enriched events into S3
// (versitygw) and, in the same iterations, gzips the same TSV bytes at
// the same level and sends them with one PutObject of the same client:
// the cost of the work itself. It reports both rates and their ratio
// (target: at least 0.8). Load also writes the state object twice (two
// small PUTs, about 2 ms each on versitygw here): a cost per batch, that
// larger batches spread.
func BenchmarkS3LoadVsGzipPut(b *testing.B) {
	srv := testutil.S3(b)
	runs := 0
	for _, tc := range []struct {
		n       int
		trusted bool
	}{{20000, true}, {20000, false}, {100000, true}} {
		n, trusted := tc.n, tc.trusted
		b.Run(fmt.Sprintf("tsv.gz/events=%d/trusted=%v", n, trusted), func(b *testing.B) {
			good := make([][]byte, n)
			var raw bytes.Buffer
			for i := range good {
				good[i] = line(i, fmt.Sprintf("2026-01-02 03:%02d:%02d.%03d", (i/60)%60, i%60, i%1000))
				raw.Write(good[i])
				raw.WriteByte('\n')
			}
			runs++ // -count: each run on a fresh prefix
			s := openS3(b, s3Options(srv, fmt.Sprintf("bench-%d", runs)))
			l, err := Open(context.Background(), Options{Store: s, Processor: proc, Now: clock, Trusted: trusted})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var tLoad, tPut time.Duration
			var ratios []float64
			var zbuf bytes.Buffer
			b.SetBytes(int64(raw.Len()))
			b.ResetTimer()
			for i := range b.N {
				batch := loader.Batch{Start: int64(i * n), End: int64((i + 1) * n), Good: good}
				t0 := time.Now()
				if err := l.Load(ctx, batch); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				zbuf.Reset()
				zw, _ := gzip.NewWriterLevel(&zbuf, gzip.DefaultCompression)
				zw.Write(raw.Bytes())
				if err := zw.Close(); err != nil {
					b.Fatal(err)
				}
				_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
					Bucket: &s.bucket, Key: aws.String(fmt.Sprintf("plain-%d/%d.gz", runs, i)),
					Body: bytes.NewReader(zbuf.Bytes()), ContentLength: aws.Int64(int64(zbuf.Len())),
				})
				if err != nil {
					b.Fatal(err)
				}
				dl, dp := t1.Sub(t0), time.Since(t1)
				tLoad, tPut = tLoad+dl, tPut+dp
				ratios = append(ratios, dp.Seconds()/dl.Seconds())
			}
			b.StopTimer()
			load := float64(n*b.N) / tLoad.Seconds()
			put := float64(n*b.N) / tPut.Seconds()
			b.ReportMetric(load, "s3-events/s")
			b.ReportMetric(put, "gzip+put-events/s")
			b.ReportMetric(load/put, "ratio")
			slices.Sort(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "median-ratio")
			b.ReportMetric(float64(zbuf.Len()), "object-bytes")
			b.ReportMetric(0, "ns/op")
		})
	}
}
