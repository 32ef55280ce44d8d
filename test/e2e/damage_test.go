package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/furrow-io/furrow/internal/payload"
	"github.com/furrow-io/furrow/internal/testutil"
	"github.com/furrow-io/furrow/internal/wal"
)

// logRecord is a payload written straight into a raw log, and where.
type logRecord struct {
	eid       string
	off, next int64
}

const damageSegmentBytes = 32 << 10

// writeRawLog fills dataDir's raw log with n page views, one payload
// each, as furrow's collector would, in segments of damageSegmentBytes,
// and returns where each landed and the segments' bases.
func writeRawLog(t *testing.T, dataDir string, n int) ([]logRecord, []int64) {
	t.Helper()
	l, err := wal.Open(wal.Options{Dir: filepath.Join(dataDir, "log", "raw"), SegmentBytes: damageSegmentBytes})
	if err != nil {
		t.Fatal(err)
	}
	var recs []logRecord
	for i := 0; i < n; i++ {
		eid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		p := &payload.CollectorPayload{
			Schema: payload.SchemaURI, IPAddress: "203.0.113.9", Timestamp: 1767323045000 + int64(i),
			Encoding: "UTF-8", Collector: "furrow-test", Path: "/i", Hostname: "collector.test",
			Querystring: "e=pv&p=web&tv=js-3.24.0&aid=damage&eid=" + eid + "&url=https%3A%2F%2Fshop.example.com%2F" + strconv.Itoa(i),
		}
		off := l.End()
		if err := l.Append(p.Marshal()); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, logRecord{eid, off, l.End()})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var bases []int64
	ents, _ := os.ReadDir(filepath.Join(dataDir, "log", "raw"))
	for _, e := range ents {
		if b, ok := strings.CutSuffix(e.Name(), ".seg"); ok {
			n, _ := strconv.ParseInt(b, 10, 64)
			bases = append(bases, n)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	if len(bases) < 6 {
		t.Fatalf("only %d segments", len(bases))
	}
	return recs, bases
}

func segPath(dataDir string, base int64) string {
	return filepath.Join(dataDir, "log", "raw", fmt.Sprintf("%020d.seg", base))
}

// flipByte xors one byte of a segment file.
func flipByte(t *testing.T, dataDir string, base, off int64) {
	t.Helper()
	path := segPath(dataDir, base)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off-base] ^= 0x04
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// inSegment returns the records of the segment starting at base.
func inSegment(recs []logRecord, bases []int64, base int64) []logRecord {
	next := int64(1 << 62)
	for i, b := range bases {
		if b == base && i+1 < len(bases) {
			next = bases[i+1]
		}
	}
	var out []logRecord
	for _, r := range recs {
		if r.off >= base && r.off < next {
			out = append(out, r)
		}
	}
	return out
}

// TestDamagedLogIsSalvaged damages a raw log that furrow has not yet
// processed, in each of the ways disks do, and restarts furrow on it:
// every event whose record is intact is loaded, each damaged stretch is
// a generic_error bad row naming its offset (valid against Iglu
// Central's schema), and nothing stalls.
func TestDamagedLogIsSalvaged(t *testing.T) {
	type report struct {
		kind string
		off  int64
	}
	cases := []struct {
		name string
		// damage changes the log and returns the events it destroyed
		// and the reports expected, in order.
		damage func(t *testing.T, dir string, recs []logRecord, bases []int64) (lost []logRecord, reports []report)
	}{
		{"bit flipped in the active segment", func(t *testing.T, dir string, recs []logRecord, bases []int64) ([]logRecord, []report) {
			seg := inSegment(recs, bases, bases[len(bases)-1])
			victim := seg[len(seg)/2]
			flipByte(t, dir, bases[len(bases)-1], victim.off+40)
			return []logRecord{victim}, []report{{"skipped", victim.off}}
		}},
		{"bit flipped in an older segment's header", func(t *testing.T, dir string, recs []logRecord, bases []int64) ([]logRecord, []report) {
			victim := inSegment(recs, bases, bases[1])[3]
			flipByte(t, dir, bases[1], victim.off+5)
			return []logRecord{victim}, []report{{"skipped", victim.off}}
		}},
		{"older segment cut short", func(t *testing.T, dir string, recs []logRecord, bases []int64) ([]logRecord, []report) {
			seg := inSegment(recs, bases, bases[2])
			cutAt := seg[4].off + 30
			os.Truncate(segPath(dir, bases[2]), cutAt-bases[2])
			return seg[4:], []report{{"skipped", seg[4].off}, {"missing", cutAt}}
		}},
		{"active segment cut short", func(t *testing.T, dir string, recs []logRecord, bases []int64) ([]logRecord, []report) {
			seg := inSegment(recs, bases, bases[len(bases)-1])
			cutAt := seg[len(seg)-3].off + 30
			os.Truncate(segPath(dir, bases[len(bases)-1]), cutAt-bases[len(bases)-1])
			return seg[len(seg)-3:], []report{{"cut", seg[len(seg)-3].off}}
		}},
		{"segment deleted", func(t *testing.T, dir string, recs []logRecord, bases []int64) ([]logRecord, []report) {
			os.Remove(segPath(dir, bases[3]))
			return inSegment(recs, bases, bases[3]), []report{{"missing", bases[3]}}
		}},
	}
	validate := badRowValidator(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			recs, bases := writeRawLog(t, dataDir, 1500)
			lost, reports := tc.damage(t, dataDir, recs, bases)
			gone := map[string]bool{}
			for _, r := range lost {
				gone[r.eid] = true
			}

			f := start(t, dataDir)
			want := len(recs) - len(gone)
			f.waitCounts(want, len(reports))
			if resp, err := http.Get(f.url("/sink-health")); err != nil || resp.StatusCode != 200 {
				t.Fatalf("sink-health after salvage: %v %v", resp, err)
			}
			f.stop()
			for _, r := range reports {
				if !strings.Contains(f.stderr.String(), fmt.Sprintf("kind=%s offset=%d", r.kind, r.off)) {
					t.Errorf("log does not report %s at %d:\n%s", r.kind, r.off, f.stderr.String())
				}
			}

			loaded := loadedEvents(t, dataDir, "")
			db := openDuckDB(t, dataDir)
			for _, r := range recs {
				if n := loaded[r.eid]; !gone[r.eid] && n != 1 {
					t.Fatalf("intact event %s (offset %d) loaded %d times", r.eid, r.off, n)
				}
			}
			if len(loaded) != want {
				t.Fatalf("loaded %d events, want %d", len(loaded), want)
			}

			rows, err := db.Query(`SELECT payload::VARCHAR FROM atomic.bad_rows WHERE failure_type = 'generic_error' ORDER BY load_tstamp`)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for rows.Next() {
				var p string
				rows.Scan(&p)
				validate([]byte(p))
				var row struct {
					Data struct {
						Failure struct{ Errors []string }
						Payload string
					}
				}
				json.Unmarshal([]byte(p), &row)
				got = append(got, row.Data.Failure.Errors[0])
			}
			if len(got) != len(reports) {
				t.Fatalf("bad rows %q, want %d", got, len(reports))
			}
			for i, r := range reports {
				if !strings.Contains(got[i], fmt.Sprintf("%s ", r.kind)) || !strings.Contains(got[i], fmt.Sprintf("at offset %d", r.off)) {
					t.Errorf("bad row %d says %q, want %s at %d", i, got[i], r.kind, r.off)
				}
			}
			quarantined, _ := filepath.Glob(filepath.Join(dataDir, "log", "raw", "quarantine", "*.bin"))
			wantQ := 0
			for _, r := range reports {
				if r.kind != "missing" {
					wantQ++
				}
			}
			if len(quarantined) != wantQ {
				t.Errorf("quarantine holds %v, want %d files", quarantined, wantQ)
			}

			// A second start finds nothing more to report or load.
			db.Close()
			f = start(t, dataDir)
			f.waitCounts(0, 0)
			f.stop()
			if strings.Contains(f.stderr.String(), "log damage") {
				t.Errorf("damage reported again after a restart:\n%s", f.stderr.String())
			}
		})
	}
}

// TestGarbageOffsetFile: a reader offset file that holds no offset stops
// furrow at start with a message naming it; once the operator removes
// it, the log is processed from its start.
func TestGarbageOffsetFile(t *testing.T) {
	dataDir := t.TempDir()
	recs, _ := writeRawLog(t, dataDir, 600)
	path := filepath.Join(dataDir, "log", "raw", "readers", "enrich")
	os.WriteFile(path, []byte("\x00\x17garbage"), 0o600)
	out, err := exec.Command(binary, "run", "--listen", "127.0.0.1:0", "--data-dir", dataDir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), path) || !strings.Contains(string(out), "not a byte offset") {
		t.Fatalf("furrow with a garbage offset file: %v\n%s", err, out)
	}
	os.Remove(path)
	f := start(t, dataDir)
	f.waitCounts(len(recs), 0)
	f.stop()
}

func badRowValidator(t *testing.T) func([]byte) {
	return testutil.BadRowValidator(t, "../../testdata/iglu-central")
}
