package kafka

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/stream"
)

func TestTSVField(t *testing.T) {
	line := []byte("app\tweb\t\tlast\n")
	for i, want := range []string{"app", "web", "", "last"} {
		if got := string(tsvField(line, i)); got != want {
			t.Errorf("field %d = %q, want %q", i, got, want)
		}
	}
	if tsvField(line, 4) != nil {
		t.Error("field past the end")
	}
	if k := string(FieldKey(2)(line)); len(k) != 36 {
		t.Errorf("empty field: key %q, want a UUID", k)
	}
	hs := FieldHeaders([]string{"app_id", "platform", "empty"}, []int{0, 1, 2})(line)
	if len(hs) != 2 || hs[0].Key != "app_id" || string(hs[1].Value) != "web" {
		t.Errorf("headers %+v", hs)
	}
}

func TestTruncateUTF8(t *testing.T) {
	s := []byte(strings.Repeat("é", 10)) // 2 bytes each
	for n := 0; n <= 21; n++ {
		got := truncateUTF8(s, n)
		if len(got) > n || !utf8.Valid(got) || len(got) < min(n, len(s))-1 {
			t.Errorf("truncate to %d: %q", n, got)
		}
	}
	if string(truncateUTF8([]byte("abc"), 10)) != "abc" {
		t.Error("short input changed")
	}
}

func FuzzTruncateUTF8(f *testing.F) {
	f.Add([]byte("héllo wörld"), 5)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || !utf8.Valid(b) {
			return
		}
		got := truncateUTF8(b, n)
		if len(got) > n || !utf8.Valid(got) || !strings.HasPrefix(string(b), string(got)) {
			t.Fatalf("truncate %q to %d: %q", b, n, got)
		}
	})
}

// Brokers that cannot be reached are named, with why: here a host name
// that does not resolve.
func TestUnreachableBrokers(t *testing.T) {
	c := config.DefaultStreamsConfig().Kafka
	c.Brokers = []string{"no-such-broker.invalid:9092"}
	cl, err := NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	s := NewSink(cl, "raw", nil)
	s.wait = 3 * time.Second
	if err := s.Write(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	err = s.Flush(context.Background())
	if err == nil || stream.IsPermanent(err) || !strings.Contains(err.Error(), "last connection to no-such-broker.invalid:9092: ") {
		t.Fatalf("Flush: %v", err)
	}
}
