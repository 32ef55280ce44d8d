package testutil

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// VersityInstall is how to get the S3-compatible server S3 starts.
const VersityInstall = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// S3Server is a throwaway S3-compatible server: Versity S3 Gateway
// (versitygw) over a temporary directory, listening on 127.0.0.1 only,
// on a free port, with one bucket.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:port
	AccessKey string
	Secret    string
	Bucket    string
	Region    string

	t    testing.TB
	bin  string
	dir  string // data/ (the buckets) and the server's log
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// S3 starts versitygw for the test, creates bucket Bucket, and stops the
// server and removes its files at cleanup. It finds versitygw on PATH,
// then in $(go env GOPATH)/bin; without it the test fails, saying how to
// install it (VersityInstall).
func S3(t testing.TB) *S3Server {
	t.Helper()
	bin, err := versityBin()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "furrow-s3-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &S3Server{
		AccessKey: "furrow-test-key", Secret: "furrow-test-secret-0123456789",
		Bucket: "furrow-test", Region: "us-east-1",
		t: t, bin: bin, dir: dir, port: FreePort(t),
	}
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", s.port)
	t.Cleanup(func() {
		s.stop()
		os.RemoveAll(dir)
	})
	s.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.Bucket}); err != nil {
		t.Fatalf("versitygw: create bucket %s: %v\n%s", s.Bucket, err, s.Log())
	}
	return s
}

func versityBin() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, g := range filepath.SplitList(gopath) {
		p := filepath.Join(g, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw (Versity S3 Gateway, the S3-compatible server of the S3 tests) is not on PATH nor in $(go env GOPATH)/bin: install it with\n\t%s", VersityInstall)
}

// Client returns an S3 client for the server, as its root user.
func (s *S3Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.Secret, ""),
		// versitygw need not be asked for the checksums AWS now computes by default.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// Start starts the server (again, after Stop) on the same port and
// directory, and waits until it answers HTTP.
func (s *S3Server) Start() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatal("versitygw: already running")
	}
	log, err := os.OpenFile(filepath.Join(s.dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(s.bin, "--access", s.AccessKey, "--secret", s.Secret, "--region", s.Region,
		"--port", fmt.Sprintf("127.0.0.1:%d", s.port), "--quiet", "posix", filepath.Join(s.dir, "data"))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("versitygw: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.done:
			s.cmd = nil
			s.t.Fatalf("versitygw exited: %v\n%s", cmd.ProcessState, s.Log())
		default:
		}
		// Any HTTP answer (403 to an unsigned request) means it serves.
		if resp, err := hc.Get(s.Endpoint + "/"); err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("versitygw does not answer on %s after 30s\n%s", s.Endpoint, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server (its port then refuses connections), for tests
// of an outage; Start brings it back with the same objects.
func (s *S3Server) Stop() {
	s.t.Helper()
	s.stop()
}

func (s *S3Server) stop() {
	if s.cmd == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
}

// Log returns what the server wrote so far.
func (s *S3Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "log"))
	return string(b)
}
