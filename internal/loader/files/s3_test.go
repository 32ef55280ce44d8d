package files

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/testutil"
)

// s3Options are the options of a store on srv's bucket under prefix.
func s3Options(srv *testutil.S3Server, prefix string) S3Options {
	return S3Options{
		Bucket: srv.Bucket, Prefix: prefix, Region: srv.Region, Endpoint: srv.Endpoint, PathStyle: true,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.Secret,
	}
}

func openS3(t testing.TB, o S3Options) *S3 {
	t.Helper()
	s, err := OpenS3(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// onlyReader hides a body's Len and Seek: Put must buffer it.
type onlyReader struct{ io.Reader }

func TestS3Store(t *testing.T) {
	ctx := context.Background()
	srv := testutil.S3(t)
	for _, checksums := range []bool{false, true} { // an S3-compatible server's way, and AWS's
		t.Run(fmt.Sprintf("checksums=%v", checksums), func(t *testing.T) {
			pfx := fmt.Sprintf("store-%v/sub", checksums)
			s := openS3(t, S3Options{PartSize: minPartSize, Bucket: srv.Bucket, Prefix: pfx + "/", Region: srv.Region,
				Endpoint: srv.Endpoint, PathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.Secret})
			s.checksums, s.maxKeys = checksums, 2
			for _, kv := range [][2]string{{"a/b/c.gz", "one"}, {"a/b/c.gz", "two"}, {"a/d", "x"}, {"e", "y"}, {"a/f", "z"}, {"a/g", ""}} {
				if err := s.Put(ctx, kv[0], strings.NewReader(kv[1])); err != nil {
					t.Fatal(err)
				}
			}
			if b, err := s.Get(ctx, "a/b/c.gz"); err != nil || string(b) != "two" {
				t.Fatalf("get %q, %v: Put does not replace", b, err)
			}
			// Keys are under the prefix in the bucket.
			raw, err := srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: &srv.Bucket, Key: aws.String(pfx + "/e")})
			if err != nil {
				t.Fatalf("object not at %s/e: %v", pfx, err)
			}
			raw.Body.Close()
			if _, err := s.Get(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) || loader.IsRetryable(err) {
				t.Fatalf("missing object: %v", err)
			}
			// Pages of 2 keys.
			if keys, err := s.List(ctx, "a/"); err != nil || !slices.Equal(keys, []string{"a/b/c.gz", "a/d", "a/f", "a/g"}) {
				t.Fatalf("list %q, %v", keys, err)
			}
			if err := s.Delete(ctx, "a/d"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "a/d"); err != nil {
				t.Fatalf("deleting a missing object: %v", err)
			}
			if keys, _ := s.List(ctx, ""); !slices.Equal(keys, []string{"a/b/c.gz", "a/f", "a/g", "e"}) {
				t.Fatalf("list %q", keys)
			}
			for _, k := range []string{"", "/abs", "a/", "a//b", "../x", "./a"} {
				if err := s.Put(ctx, k, strings.NewReader("z")); err == nil {
					t.Errorf("key %q accepted", k)
				}
			}

			// Bodies around the part size, seekable or not: one PutObject
			// up to a part, multipart beyond.
			big := make([]byte, 2*minPartSize+minPartSize/2)
			rand.Read(big)
			for _, tc := range []struct {
				name string
				n    int
				wrap bool
			}{
				{"part-1", minPartSize - 1, true}, {"part", minPartSize, true}, {"part+1", minPartSize + 1, true},
				{"two parts", 2 * minPartSize, true}, {"2.5 parts", len(big), true}, {"2.5 parts seekable", len(big), false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					var r io.Reader = bytes.NewReader(big[:tc.n])
					if tc.wrap {
						r = onlyReader{r}
					}
					if err := s.Put(ctx, "big/"+tc.name, r); err != nil {
						t.Fatal(err)
					}
					got, err := s.Get(ctx, "big/"+tc.name)
					if err != nil || !bytes.Equal(got, big[:tc.n]) {
						t.Fatalf("read back %d bytes, want %d: %v", len(got), tc.n, err)
					}
				})
			}
			// A body that fails in its second part: the upload is
			// aborted, and no object appears.
			failing := io.MultiReader(bytes.NewReader(big[:minPartSize+10]), iotest.ErrReader(errors.New("disk gone")))
			if err := s.Put(ctx, "big/failed", failing); err == nil || !strings.Contains(err.Error(), "disk gone") {
				t.Fatalf("put of a failing body: %v", err)
			}
			if _, err := s.Get(ctx, "big/failed"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("object of a failed upload: %v", err)
			}
			// No multipart upload is left behind.
			ups, err := srv.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &srv.Bucket})
			if err != nil || len(ups.Uploads) != 0 {
				t.Fatalf("%d multipart uploads in progress, %v", len(ups.Uploads), err)
			}
		})
	}
}

// download copies every object of the bucket under prefix to a
// directory, as the files they would be in a Dir store.
func download(t testing.TB, srv *testutil.S3Server, prefix string) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	c := srv.Client()
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &srv.Bucket, Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &srv.Bucket, Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(*o.Key, prefix)))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func openS3Loader(t testing.TB, st Store) *Loader {
	t.Helper()
	l, err := Open(context.Background(), Options{Store: st, Processor: proc, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestS3Load(t *testing.T) {
	ctx := context.Background()
	srv := testutil.S3(t)
	const pfx = "furrow/prod/"
	s := openS3(t, s3Options(srv, "furrow/prod"))
	l := openS3Loader(t, s)
	b1, b2 := batch(100, 200, 500), batch(200, 300, 500)
	if err := l.Load(ctx, b1); err != nil {
		t.Fatal(err)
	}

	// The reference: the same batch in a directory.
	ref := t.TempDir()
	if err := open(t, ref, Options{}).Load(ctx, b1); err != nil {
		t.Fatal(err)
	}
	want := contents(t, ref)
	got := download(t, srv, pfx)
	if !equalMaps(contents(t, got), want) {
		t.Fatalf("objects in S3 differ from the directory's:\n%q\nwant\n%q", keysOf(contents(t, got)), keysOf(want))
	}
	// Every object passes gzip -t, and holds the batch's lines.
	var good [][]byte
	nbad := 0
	for k := range want {
		if k == StateKey {
			continue
		}
		ls := lines(gunzip(t, filepath.Join(got, k)))
		if strings.HasPrefix(k, "good/") {
			good = append(good, ls...)
		} else {
			nbad += len(ls)
			for _, row := range ls {
				if !json.Valid(row) {
					t.Errorf("%s: a line is not JSON: %q", k, row)
				}
			}
		}
	}
	sortLines := func(ls [][]byte) [][]byte { slices.SortFunc(ls, bytes.Compare); return ls }
	if !slices.EqualFunc(sortLines(good), sortLines(slices.Clone(b1.Good[:500])), bytes.Equal) {
		t.Fatalf("%d good lines differ from the batch's 500", len(good))
	}
	if nbad != 3 { // two bad rows, one loader_parsing_error
		t.Fatalf("%d bad rows, want 3", nbad)
	}

	// Position survives a reopen, with a new client.
	l = openS3Loader(t, openS3(t, s3Options(srv, "furrow/prod/")))
	if p, err := l.Position(ctx); err != nil || p != 200 {
		t.Fatalf("position after reopen %d, %v", p, err)
	}

	// A crash in the middle of the next load: the replay writes the same
	// keys with the same bytes, and the store holds each batch once.
	refB2 := open(t, ref, Options{})
	if err := refB2.Load(ctx, b2); err != nil {
		t.Fatal(err)
	}
	want = contents(t, ref)
	crash := &failAfter{Store: s, puts: 3} // state, one object, then dies
	if err := openS3Loader(t, crash).Load(ctx, b2); !errors.Is(err, errDied) {
		t.Fatalf("load: %v", err)
	}
	l = openS3Loader(t, s)
	if p, _ := l.Position(ctx); p != 200 {
		t.Fatalf("position %d after the crash, want 200", p)
	}
	for _, b := range []loader.Batch{b2, b1, b2} { // the replay, then batches it holds
		if err := l.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if got := contents(t, download(t, srv, pfx)); !equalMaps(got, want) {
		t.Fatalf("objects after the replay differ from one load each:\n%q\nwant\n%q", keysOf(got), keysOf(want))
	}
	if p, err := l.Position(ctx); err != nil || p != 300 {
		t.Fatalf("position %d, %v", p, err)
	}
}

func TestS3Errors(t *testing.T) {
	ctx := context.Background()
	srv := testutil.S3(t)
	for _, tc := range []struct {
		name     string
		edit     func(*S3Options)
		code     string // the server's answer, in the error
		settings string // what the message says to fix
	}{
		{"wrong secret", func(o *S3Options) { o.SecretAccessKey = "not-the-secret-4242" }, "SignatureDoesNotMatch", "secret_access_key"},
		{"unknown access key", func(o *S3Options) { o.AccessKeyID = "nobody" }, "", "access_key_id"}, // versitygw: XAdminUserNotFound
		{"missing bucket", func(o *S3Options) { o.Bucket = "no-such-bucket" }, "NoSuchBucket", "check bucket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := s3Options(srv, "p")
			tc.edit(&o)
			s := openS3(t, o)
			_, err := Open(ctx, Options{Store: s, Processor: proc, Now: clock})
			check := func(op string, err error) {
				t.Helper()
				switch {
				case err == nil:
					t.Fatalf("%s: no error", op)
				case loader.IsRetryable(err):
					t.Errorf("%s: retryable: %v", op, err)
				case !strings.Contains(err.Error(), tc.code) || !strings.Contains(err.Error(), tc.settings):
					t.Errorf("%s: %v\nwant %s and %q", op, err, tc.code, tc.settings)
				case strings.Contains(err.Error(), "not-the-secret-4242") || strings.Contains(err.Error(), srv.Secret):
					t.Errorf("%s: the message holds the secret: %v", op, err)
				}
			}
			check("open", err)
			check("put", s.Put(ctx, "x", strings.NewReader("x")))
			_, err = s.List(ctx, "")
			check("list", err)
			check("delete", s.Delete(ctx, "x"))
			t.Log(err)
		})
	}

	t.Run("options", func(t *testing.T) {
		for _, o := range []S3Options{
			{},
			{Bucket: "s3://b"},
			{Bucket: "b", Prefix: "a/../b"},
			{Bucket: "b", AccessKeyID: "k"},
			{Bucket: "b", Endpoint: srv.Endpoint, PartSize: 1 << 20},
		} {
			if _, err := OpenS3(ctx, o); err == nil {
				t.Errorf("%+v accepted", o)
			}
		}
	})
}

func TestS3Outage(t *testing.T) {
	ctx := context.Background()
	srv := testutil.S3(t)
	s := openS3(t, s3Options(srv, ""))
	l := openS3Loader(t, s)
	if err := l.Load(ctx, batch(0, 100, 50)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	err := l.Load(ctx, batch(100, 200, 50))
	if !loader.IsRetryable(err) {
		t.Fatalf("load with the server stopped: %v, want a retryable error", err)
	}
	t.Log(err)
	if _, err := l.Position(ctx); !loader.IsRetryable(err) {
		t.Fatalf("position with the server stopped: %v", err)
	}
	srv.Start()
	if err := l.Load(ctx, batch(100, 200, 50)); err != nil {
		t.Fatalf("load after the restart: %v", err)
	}
	if p, err := openS3Loader(t, s).Position(ctx); err != nil || p != 200 {
		t.Fatalf("position %d, %v", p, err)
	}
	// Each event once.
	ref := t.TempDir()
	rl := open(t, ref, Options{})
	for _, b := range []loader.Batch{batch(0, 100, 50), batch(100, 200, 50)} {
		if err := rl.Load(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := contents(t, download(t, srv, "")), contents(t, ref); !equalMaps(got, want) {
		t.Fatalf("objects differ from one load each:\n%q\nwant\n%q", keysOf(got), keysOf(want))
	}
}

// TestS3ErrorClasses: answers versitygw does not give on demand
// (throttling, a fault of the server, a refused permission), from a
// stand-in that answers every request with one S3 error.
func TestS3ErrorClasses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		status    int
		code      string
		retryable bool
		says      string
	}{
		{503, "SlowDown", true, "SlowDown"},
		{503, "ServiceUnavailable", true, "ServiceUnavailable"},
		{500, "InternalError", true, "InternalError"},
		{502, "BadGateway", true, "502"},
		{429, "TooManyRequests", true, "TooManyRequests"},
		{403, "AccessDenied", false, "s3:ListBucket on bucket b"},
		{301, "PermanentRedirect", false, "check region"},
		{400, "InvalidArgument", false, "InvalidArgument"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(tc.status)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>stand-in</Message><RequestId>1</RequestId></Error>`, tc.code)
			}))
			defer srv.Close()
			s := openS3(t, S3Options{Bucket: "b", Endpoint: srv.URL, PathStyle: true, AccessKeyID: "k", SecretAccessKey: "secret-0"})
			err := s.Put(ctx, "x", strings.NewReader("x"))
			if err == nil || loader.IsRetryable(err) != tc.retryable || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "secret-0") {
				t.Fatalf("put: %v; want retryable=%v and %q", err, tc.retryable, tc.says)
			}
			_, err = s.Get(ctx, "x")
			if err == nil || errors.Is(err, fs.ErrNotExist) || loader.IsRetryable(err) != tc.retryable {
				t.Fatalf("get: %v; want retryable=%v", err, tc.retryable)
			}
			t.Logf("%d requests: %v", calls.Load(), err)
		})
	}
}

func TestS3Timeout(t *testing.T) {
	ctx := context.Background()
	stall := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(stall)
	s := openS3(t, S3Options{Bucket: "b", Endpoint: srv.URL, PathStyle: true, AccessKeyID: "k", SecretAccessKey: "s", Timeout: 100 * time.Millisecond})
	if err := s.Put(ctx, "x", strings.NewReader("x")); !loader.IsRetryable(err) {
		t.Fatalf("put to a server that does not answer: %v, want retryable", err)
	}
	// The caller's deadline is a timeout too; its cancellation is not.
	s = openS3(t, S3Options{Bucket: "b", Endpoint: srv.URL, PathStyle: true, AccessKeyID: "k", SecretAccessKey: "s"})
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := s.Put(dctx, "x", strings.NewReader("x")); !loader.IsRetryable(err) {
		t.Fatalf("put past the caller's deadline: %v, want retryable", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	if err := s.Put(cctx, "x", strings.NewReader("x")); err == nil || loader.IsRetryable(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("put cancelled: %v, want context.Canceled, not retryable", err)
	}
}

// TestS3CredentialChain: without access_key_id and secret_access_key,
// the standard AWS chain finds the credentials (here in the
// environment); with none anywhere, the error says what to set.
func TestS3CredentialChain(t *testing.T) {
	ctx := context.Background()
	srv := testutil.S3(t)
	nowhere := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_CONFIG_FILE", nowhere)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", nowhere)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.Secret)
	o := s3Options(srv, "chain")
	o.AccessKeyID, o.SecretAccessKey = "", ""
	l := openS3Loader(t, openS3(t, o))
	if err := l.Load(ctx, batch(0, 10, 5)); err != nil {
		t.Fatalf("credentials from the environment: %v", err)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	_, err := Open(ctx, Options{Store: openS3(t, o), Processor: proc, Now: clock})
	if err == nil || loader.IsRetryable(err) || !strings.Contains(err.Error(), "set access_key_id and secret_access_key") {
		t.Fatalf("no credentials anywhere: %v", err)
	}
	t.Log(err)
}
