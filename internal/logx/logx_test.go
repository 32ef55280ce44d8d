package logx

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	l := NewLimiter(log, 10*time.Second)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	full := errors.New("no space left on device")

	steps := []struct {
		advance time.Duration
		msg     string
		err     error
		logged  bool
	}{
		{0, "write failed", full, true},
		{time.Second, "write failed", full, false},
		{time.Second, "write failed", full, false},
		{time.Second, "write failed", errors.New("input/output error"), true}, // another error: its own line
		{time.Second, "other message", full, true},
		{7 * time.Second, "write failed", full, true}, // 10 s after the first line: logged with the count
		{time.Second, "write failed", full, false},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if got := l.Log(slog.LevelError, s.msg, s.err); got != s.logged {
			t.Fatalf("step %d: logged %v, want %v", i, got, s.logged)
		}
	}
	l.Reset("write failed")
	l.Reset("write failed") // nothing left to report
	want := []string{
		`level=ERROR msg="write failed" err="no space left on device"`,
		`level=ERROR msg="write failed" err="input/output error"`,
		`level=ERROR msg="other message" err="no space left on device"`,
		`level=ERROR msg="write failed" err="no space left on device" repeated=2 since=2026-12-01T12:00:00Z`,
		`level=INFO msg="write failed (no longer occurring)" repeated=1 since=2026-12-01T12:00:00Z`,
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// After Reset the message is new again.
	if !l.Log(slog.LevelError, "write failed", full) {
		t.Fatal("a message logged after Reset was suppressed")
	}
}

func TestLimiterDisabledLevel(t *testing.T) {
	var buf bytes.Buffer
	l := NewLimiter(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})), time.Second)
	if l.Log(slog.LevelDebug, "quiet", nil) || buf.Len() != 0 {
		t.Fatal("a debug message was logged at warn level")
	}
}
