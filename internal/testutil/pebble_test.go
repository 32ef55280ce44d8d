package testutil

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestPebble(t *testing.T) {
	pb := Pebble(t, PebbleOptions{Validity: time.Minute})
	if !strings.HasPrefix(pb.DirectoryURL(), "https://127.0.0.1:") {
		t.Errorf("DirectoryURL = %q", pb.DirectoryURL())
	}
	if len(pb.RootPEM()) == 0 {
		t.Error("no RootPEM")
	}
	// The directory's HTTPS is signed by DirectoryCAFile's root, not by the
	// issuing root.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pb.RootPool()}}}
	if _, err := client.Get(pb.DirectoryURL()); err == nil {
		t.Error("the directory's certificate verified against the issuing root")
	}
	if pb.Issued() != 0 {
		t.Errorf("Issued = %d before any order", pb.Issued())
	}
}

func TestPebbleMissing(t *testing.T) {
	t.Setenv("PATH", "")
	t.Setenv("GOBIN", "")
	t.Setenv("GOPATH", t.TempDir())
	_, err := pebbleBin("pebble")
	if err == nil || !strings.Contains(err.Error(), PebbleInstall) {
		t.Fatalf("%v: want the install command", err)
	}
}
