package wal

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// secrets returns n distinct payloads that occur nowhere else.
func secrets(t testing.TB, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "clear-payload/%s/%04d/ip=203.0.113.%d", t.Name(), i, i%250)
	}
	return out
}

// filesHolding returns the files under dir (segments, reader offsets,
// quarantine, probe, everything) whose bytes contain any of recs.
func filesHolding(t testing.TB, dir string, recs [][]byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // the probe, or a segment being deleted
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, r := range recs {
			if bytes.Contains(b, r) {
				found = append(found, path)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// waitGone polls until no file under dir holds recs, and returns how long
// it took; it fails the test after timeout.
func waitGone(t *testing.T, dir string, recs [][]byte, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		left := filesHolding(t, dir, recs)
		if len(left) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("after %s, still on disk in %q", timeout, left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func appendAll(t testing.TB, l *Log, recs [][]byte) {
	t.Helper()
	for _, r := range recs {
		if err := l.Append(r); err != nil {
			t.Fatal(err)
		}
	}
}

// readCommit reads everything available as name and commits it.
func readCommit(t *testing.T, l *Log, name string) (*Reader, [][]byte) {
	t.Helper()
	r, err := l.Reader(name)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if err := r.Commit(r.Position()); err != nil {
		t.Fatal(err)
	}
	return r, got
}

// TestExpire drives the age check by hand, with the clock given, so that
// what it does at each age is exact; the background loop is set far off.
func TestExpire(t *testing.T) {
	const age = time.Hour
	type step struct {
		after      time.Duration // since the first record
		wantRolled bool          // a new active segment at the log's end
		wantKept   bool          // the records still on disk
	}
	tests := []struct {
		name    string
		readers func(t *testing.T, l *Log) // readers and what they commit
		steps   []step
		// then, if set, runs after the steps and must leave nothing.
		then func(t *testing.T, l *Log)
	}{
		{
			name:    "every reader committed",
			readers: func(t *testing.T, l *Log) { readCommit(t, l, "enrich"); readCommit(t, l, "audit") },
			steps: []step{
				{after: age / 2, wantRolled: false, wantKept: true},
				{after: age - time.Nanosecond, wantRolled: false, wantKept: true},
				{after: age, wantRolled: true, wantKept: false},
			},
		},
		{
			name: "one reader has not committed",
			readers: func(t *testing.T, l *Log) {
				readCommit(t, l, "enrich")
				if _, err := l.Reader("audit"); err != nil {
					t.Fatal(err)
				}
			},
			steps: []step{{after: 2 * age, wantRolled: true, wantKept: true}},
			then:  func(t *testing.T, l *Log) { readCommit(t, l, "audit") },
		},
		{
			name: "a reader committed half",
			readers: func(t *testing.T, l *Log) {
				r, err := l.Reader("enrich")
				if err != nil {
					t.Fatal(err)
				}
				recs, err := r.Read(context.Background(), 5, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Commit(recs[len(recs)-1].Next); err != nil {
					t.Fatal(err)
				}
			},
			steps: []step{{after: 2 * age, wantRolled: true, wantKept: true}},
			then:  func(t *testing.T, l *Log) { readCommit(t, l, "enrich") },
		},
		{
			name:    "no reader yet",
			readers: func(*testing.T, *Log) {},
			steps:   []step{{after: 2 * age, wantRolled: true, wantKept: true}},
			then:    func(t *testing.T, l *Log) { readCommit(t, l, "enrich") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, dir, func(o *Options) { o.MaxSegmentAge = age })
			defer l.Close()
			recs := secrets(t, 10)
			appendAll(t, l, recs)
			end := l.End()
			tt.readers(t, l)
			l.fileMu.Lock()
			since := l.activeSince
			l.fileMu.Unlock()
			for _, s := range tt.steps {
				if err := l.expire(since.Add(s.after)); err != nil {
					t.Fatal(err)
				}
				segs, err := listSegments(dir)
				if err != nil {
					t.Fatal(err)
				}
				if rolled := segs[len(segs)-1] == end; rolled != s.wantRolled {
					t.Errorf("at %s: segments %v, rolled = %v, want %v", s.after, segs, rolled, s.wantRolled)
				}
				if kept := len(filesHolding(t, dir, recs)) > 0; kept != s.wantKept {
					t.Errorf("at %s: records on disk = %v, want %v", s.after, kept, s.wantKept)
				}
			}
			if tt.then != nil {
				tt.then(t, l)
				if left := filesHolding(t, dir, recs); len(left) > 0 {
					t.Errorf("once every reader committed, still on disk in %q", left)
				}
			}
			if l.End() != end {
				t.Errorf("end moved from %d to %d", end, l.End())
			}
			// An empty active segment is not rolled, however old.
			before, _ := listSegments(dir)
			if err := l.expire(time.Now().Add(10 * age)); err != nil {
				t.Fatal(err)
			}
			if after, _ := listSegments(dir); len(after) != len(before) || after[len(after)-1] != before[len(before)-1] {
				t.Errorf("empty active segment rolled: %v, then %v", before, after)
			}
		})
	}
}

// TestMaxSegmentAgeInBackground: with no write after them, committed
// records leave the disk within about MaxSegmentAge plus a check, including
// from the segment file a reader still holds open; records a reader has not
// committed stay.
func TestMaxSegmentAgeInBackground(t *testing.T) {
	const age = 200 * time.Millisecond
	dir := t.TempDir()
	l := open(t, dir, func(o *Options) { o.MaxSegmentAge = age })
	defer l.Close()
	recs := secrets(t, 50)
	appendAll(t, l, recs)
	enrich, got := readCommit(t, l, "enrich")
	if len(got) != len(recs) {
		t.Fatalf("read %d records, want %d", len(got), len(recs))
	}
	held := enrich.f // the reader keeps the segment it finished open
	audit, err := l.Reader("audit")
	if err != nil {
		t.Fatal(err)
	}

	// audit has not committed: well past the age, everything stays.
	time.Sleep(3 * age)
	if left := filesHolding(t, dir, recs); len(left) == 0 {
		t.Fatal("records deleted while reader audit had not committed them")
	}
	if segs, _ := listSegments(dir); len(segs) != 2 || segs[1] != l.End() {
		t.Fatalf("segments %v: want the old one kept and a new active one at %d", segs, l.End())
	}

	// A later append goes to the new segment at a higher offset.
	if err := l.Append([]byte("later")); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, audit); len(got) != len(recs)+1 || string(got[len(got)-1]) != "later" {
		t.Fatalf("audit read %d records, want %d ending with %q", len(got), len(recs)+1, "later")
	}
	if err := audit.Commit(audit.Position()); err != nil {
		t.Fatal(err)
	}
	// enrich has not read "later": its segment stays; the first goes.
	if took := waitGone(t, dir, recs, 5*time.Second); took > 2*time.Second {
		t.Errorf("took %s to delete committed records", took)
	}
	if left := filesHolding(t, dir, [][]byte{[]byte("later")}); len(left) != 1 {
		t.Fatalf("the uncommitted record is in %q, want one segment", left)
	}
	if st, err := held.Stat(); err != nil || st.Size() != 0 {
		t.Errorf("the deleted segment a reader still holds open: size %v, err %v; want it truncated", st.Size(), err)
	}

	// Without a reader lagging, the time is bounded by the age. Once
	// "later" is gone the active segment is empty, so the next record
	// starts its age.
	readCommit(t, l, "enrich")
	readCommit(t, l, "audit")
	waitGone(t, dir, [][]byte{[]byte("later")}, 5*time.Second)
	more := secrets(t, 5)
	for i := range more {
		more[i] = append(more[i], "/more"...)
	}
	written := time.Now()
	appendAll(t, l, more)
	readCommit(t, l, "enrich")
	readCommit(t, l, "audit")
	waitGone(t, dir, more, 5*time.Second)
	took := time.Since(written)
	t.Logf("committed records gone %s after they were written (MaxSegmentAge %s, check every %s)", took, age, ageCheckInterval(age))
	if took < age {
		t.Errorf("records deleted %s after they were written, before MaxSegmentAge %s", took, age)
	}
	if took > age+ageCheckInterval(age)+2*time.Second {
		t.Errorf("records deleted only %s after they were written", took)
	}
}

// TestMaxSegmentAgeRestart: a log reopened with MaxSegmentAge deletes what
// its readers committed before the restart, without a new write; offsets
// continue, and readers resume where they were. A reader with an offset
// file counts even before it is opened.
func TestMaxSegmentAgeRestart(t *testing.T) {
	const age = 200 * time.Millisecond
	tests := []struct {
		name string
		// lagging, if set, is a reader that committed nothing before the
		// restart and is not opened until the end.
		lagging  string
		wantGone bool
	}{
		{name: "every reader committed", wantGone: true},
		{name: "a reader not yet reopened lags", lagging: "audit", wantGone: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, dir, nil)
			recs := secrets(t, 20)
			appendAll(t, l, recs)
			if tt.lagging != "" {
				r, err := l.Reader(tt.lagging)
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Commit(r.Position()); err != nil {
					t.Fatal(err)
				}
			}
			readCommit(t, l, "enrich")
			end := l.End()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}

			l = open(t, dir, func(o *Options) { o.MaxSegmentAge = age })
			defer func() { l.Close() }()
			if tt.wantGone {
				waitGone(t, dir, recs, 5*time.Second)
			} else {
				time.Sleep(3 * age)
				if len(filesHolding(t, dir, recs)) == 0 {
					t.Fatalf("records deleted while reader %s, not reopened, had not committed them", tt.lagging)
				}
			}
			if l.End() != end {
				t.Fatalf("end after the restart = %d, want %d", l.End(), end)
			}
			if err := l.Append([]byte("after-restart")); err != nil {
				t.Fatal(err)
			}
			r, err := l.Reader("enrich")
			if err != nil {
				t.Fatal(err)
			}
			recsRead, err := r.Read(context.Background(), 10, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(recsRead) != 1 || string(recsRead[0].Data) != "after-restart" || recsRead[0].Offset != end {
				t.Fatalf("enrich resumed with %d records, first %q at %d; want %q at %d",
					len(recsRead), recsRead[0].Data, recsRead[0].Offset, "after-restart", end)
			}
			if err := r.Commit(recsRead[0].Next); err != nil {
				t.Fatal(err)
			}
			if tt.lagging != "" {
				lr, err := l.Reader(tt.lagging)
				if err != nil {
					t.Fatal(err)
				}
				if got := readAll(t, lr); len(got) != len(recs)+1 {
					t.Fatalf("%s read %d records after the restart, want %d", tt.lagging, len(got), len(recs)+1)
				}
				if err := lr.Commit(lr.Position()); err != nil {
					t.Fatal(err)
				}
				waitGone(t, dir, recs, 5*time.Second)
			}

			// Once more: the offsets survive a restart with everything pruned.
			next := l.End()
			waitGone(t, dir, [][]byte{[]byte("after-restart")}, 5*time.Second)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = open(t, dir, func(o *Options) { o.MaxSegmentAge = age })
			if l.End() != next {
				t.Fatalf("end after the second restart = %d, want %d", l.End(), next)
			}
			if err := l.Append([]byte("third")); err != nil {
				t.Fatal(err)
			}
			r, err = l.Reader("enrich")
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, r); len(got) != 1 || string(got[0]) != "third" {
				t.Fatalf("after the second restart enrich read %q", got)
			}
		})
	}
}

// TestMaxSegmentAgeUnderTraffic rolls and prunes while appends and a
// reader run (for -race): every record is read once, in order, at rising
// offsets, and what was committed is deleted.
func TestMaxSegmentAgeUnderTraffic(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, func(o *Options) { o.MaxSegmentAge = 20 * time.Millisecond })
	defer l.Close()
	const writers, each = 4, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := l.Append(fmt.Appendf(nil, "%d/%d", w, i)); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	r, err := l.Reader("enrich")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	last := map[int]int{}
	prev := int64(-1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(seen) < writers*each {
		recs, err := r.Read(ctx, 100, 1<<20)
		if err != nil {
			t.Fatalf("after %d records: %v", len(seen), err)
		}
		for _, rec := range recs {
			if rec.Offset <= prev {
				t.Fatalf("offset %d after %d", rec.Offset, prev)
			}
			prev = rec.Offset
			var w, i int
			fmt.Sscanf(string(rec.Data), "%d/%d", &w, &i)
			if seen[string(rec.Data)] {
				t.Fatalf("read %s twice", rec.Data)
			}
			if n, ok := last[w]; ok && i != n+1 {
				t.Fatalf("writer %d: record %d after %d", w, i, n)
			}
			seen[string(rec.Data)], last[w] = true, i
		}
		if err := r.Commit(recs[len(recs)-1].Next); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	time.Sleep(100 * time.Millisecond)
	if err := l.expire(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if segs, _ := listSegments(dir); len(segs) != 1 || segs[0] != l.End() {
		t.Fatalf("segments %v after everything was committed, want one empty at %d", segs, l.End())
	}
}

func TestMaxSegmentAgeNegative(t *testing.T) {
	_, err := Open(Options{Dir: t.TempDir(), MaxSegmentAge: -time.Second})
	if err == nil {
		t.Fatal("negative MaxSegmentAge accepted")
	}
}

// TestUpgradeLeftoverRemoved: a rewrite an interrupted upgrade left
// holds records; Open removes it.
func TestUpgradeLeftoverRemoved(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, nil)
	l.Append([]byte("x"))
	l.Close()
	recs := secrets(t, 1)
	leftover := segmentPath(dir, 1<<20) + ".upgrade"
	if err := os.WriteFile(leftover, appendRecord(nil, recs[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	l = open(t, dir, nil)
	defer l.Close()
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("leftover %s: %v, want it removed", leftover, err)
	}
	if left := filesHolding(t, dir, recs); len(left) > 0 {
		t.Fatalf("still on disk in %q", left)
	}
}
