package health

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRegistry(t *testing.T) {
	var buf bytes.Buffer
	r := New(slog.New(slog.NewTextHandler(&buf, nil)), 0)
	enr := r.Component("enrich")
	disk := errors.New("no space left on device")
	var probe error
	r.Check("log/raw", func() error { return probe })
	if !r.Healthy() {
		t.Fatal("a new registry is unhealthy")
	}
	enr.OK() // nothing to recover from: not logged
	for i := 0; i < 5; i++ {
		enr.Fail(disk)
	}
	probe = disk
	err := r.Err()
	if err == nil || err.Error() != "enrich: no space left on device\nlog/raw: no space left on device" {
		t.Fatalf("Err() = %v", err)
	}
	st := r.Status()
	if len(st) != 2 || st[0].Name != "enrich" || st[0].Fails != 5 || st[0].Since.IsZero() || st[0].Stopped {
		t.Fatalf("status %+v", st)
	}
	reg := prometheus.NewRegistry()
	if err := r.Register(reg); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP furrow_component_healthy 1 if the component is doing its work, 0 if it is failing (and retrying) or has stopped.
# TYPE furrow_component_healthy gauge
furrow_component_healthy{component="enrich"} 0
furrow_component_healthy{component="log/raw"} 0
`)); err != nil {
		t.Fatal(err)
	}
	enr.OK()
	probe = nil
	if !r.Healthy() {
		t.Fatalf("unhealthy after recovery: %v", r.Err())
	}
	fwd := r.Component("forward")
	fwd.Stop(errors.New("permission denied"))
	fwd.OK() // a stopped component stays stopped
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "forward: permission denied") {
		t.Fatalf("Err() after Stop = %v", err)
	}

	log := buf.String()
	for _, want := range []string{
		`level=ERROR msg="enrich: failing; retrying" err="no space left on device"`,
		`level=ERROR msg="health: log/raw is unhealthy" err="no space left on device"`,
		`level=INFO msg="enrich: failing; retrying (no longer occurring)" repeated=4`,
		`level=INFO msg="enrich: working again" failed_attempts=5`,
		`level=INFO msg="health: log/raw is healthy again"`,
		`level=ERROR msg="forward: stopped" err="permission denied"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s\n%s", want, log)
		}
	}
	if n := strings.Count(log, `msg="enrich: failing; retrying" err=`); n != 1 {
		t.Errorf("the repeated failure was logged %d times, want once\n%s", n, log)
	}
}
