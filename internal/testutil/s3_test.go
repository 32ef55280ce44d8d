package testutil

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestS3Server(t *testing.T) {
	ctx := context.Background()
	srv := S3(t)
	head := func() error {
		_, err := srv.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &srv.Bucket})
		return err
	}
	if err := head(); err != nil {
		t.Fatalf("bucket %s: %v", srv.Bucket, err)
	}
	srv.Stop()
	addr := strings.TrimPrefix(srv.Endpoint, "http://")
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Stop", addr)
	}
	srv.Start()
	if err := head(); err != nil {
		t.Fatalf("bucket %s after a restart: %v", srv.Bucket, err)
	}
}

func TestVersityMissing(t *testing.T) {
	t.Setenv("PATH", "")
	t.Setenv("GOPATH", t.TempDir())
	_, err := versityBin()
	if err == nil || !strings.Contains(err.Error(), VersityInstall) {
		t.Fatalf("%v: want the install command", err)
	}
}
