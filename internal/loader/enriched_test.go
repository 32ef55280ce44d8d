package loader

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/furrow-io/furrow/internal/stream"
	"github.com/furrow-io/furrow/internal/wal"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range []Frame{
		{},
		{Source: "raw", Position: 12345},
		{Source: "collector-bad", Position: 1 << 40, Lines: []Line{{KindBad, []byte(`{"schema":"x"}`)}}},
		{Lines: []Line{{KindGood, []byte("a\tb")}, {KindGood, nil}, {KindBad, []byte("{}")}}},
	} {
		got, err := DecodeFrame(AppendFrame(nil, f))
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		if got.Source != f.Source || got.Position != f.Position || len(got.Lines) != len(f.Lines) {
			t.Fatalf("got %+v, want %+v", got, f)
		}
		for i := range f.Lines {
			if got.Lines[i].Kind != f.Lines[i].Kind || !bytes.Equal(got.Lines[i].Data, f.Lines[i].Data) {
				t.Fatalf("line %d: got %+v, want %+v", i, got.Lines[i], f.Lines[i])
			}
		}
	}
	for _, bad := range [][]byte{nil, []byte("X"), []byte("F"), AppendFrame(nil, Frame{Lines: []Line{{KindGood, []byte("abc")}}})[:8]} {
		if _, err := DecodeFrame(bad); err == nil {
			t.Fatalf("%q decoded", bad)
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(AppendFrame(nil, Frame{Source: "raw", Position: 7, Lines: []Line{{KindGood, []byte("x")}, {KindBad, []byte("y")}}}))
	f.Add([]byte("Gabc"))
	f.Fuzz(func(t *testing.T, rec []byte) {
		fr, err := DecodeFrame(rec)
		if err != nil {
			return
		}
		again, err := DecodeFrame(AppendFrame(nil, fr))
		if err != nil || again.Source != fr.Source || again.Position != fr.Position || len(again.Lines) != len(fr.Lines) {
			t.Fatalf("re-encoding %+v: %+v, %v", fr, again, err)
		}
	})
}

func readFrames(t *testing.T, l *wal.Log) []Frame {
	t.Helper()
	rd, err := l.Reader("test-all")
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []Frame
	for rd.Position() < l.End() {
		recs, err := rd.Read(context.Background(), 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			f, err := DecodeFrame(append([]byte(nil), r.Data...))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, f)
		}
	}
	return out
}

// A flush writes only what was written up to the last Mark, with its
// position; the rest waits. The newest position of each source is found
// again at the next open.
func TestStageFlushesUpToTheMark(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	e, last, err := OpenEnriched(context.Background(), l)
	if err != nil || len(last) != 0 {
		t.Fatal(last, err)
	}
	ctx := context.Background()
	st := e.Stage("raw")
	st.Good().Write(ctx, []byte("g1"), []byte("g2"))
	st.Bad().Write(ctx, []byte("b1"))
	stream.MarkWritten(st.Good(), &stream.Batch{Position: 100})
	st.Good().Write(ctx, []byte("g3")) // the next batch, not yet whole
	if err := stream.Flush(ctx, st.Good()); err != nil {
		t.Fatal(err)
	}
	if err := stream.Flush(ctx, st.Bad()); err != nil { // nothing new
		t.Fatal(err)
	}
	fr := readFrames(t, l)
	if len(fr) != 1 || fr[0].Source != "raw" || fr[0].Position != 100 || len(fr[0].Lines) != 3 ||
		string(fr[0].Lines[2].Data) != "b1" || fr[0].Lines[2].Kind != KindBad {
		t.Fatalf("frames %+v", fr)
	}
	stream.MarkWritten(st.Good(), &stream.Batch{Position: 200})
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A batch with no output still moves the position.
	stream.MarkWritten(st.Good(), &stream.Batch{Position: 300})
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	fwd := e.Stage("collector-bad")
	fwd.Bad().Write(ctx, []byte("sv"))
	stream.MarkWritten(fwd.Bad(), &stream.Batch{Position: 40})
	if err := fwd.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	fr = readFrames(t, l)
	if len(fr) != 4 || string(fr[1].Lines[0].Data) != "g3" || fr[1].Position != 200 || len(fr[2].Lines) != 0 || fr[2].Position != 300 {
		t.Fatalf("frames %+v", fr)
	}
	e.Close()
	l.Close()

	l = openLog(t, dir)
	defer l.Close()
	e, last, err = OpenEnriched(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if last["raw"] != 300 || last["collector-bad"] != 40 {
		t.Fatalf("positions found at open: %v", last)
	}
}

// The marks reader keeps a source's newest frame until that source's
// reader commits past it, and no longer.
func TestMarksFollowAcknowledgements(t *testing.T) {
	l, err := wal.Open(wal.Options{Dir: t.TempDir(), SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	e, _, err := OpenEnriched(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	st := e.Stage("raw")
	pos := int64(0)
	src := e.Source("raw", sourceFunc(func() *stream.Batch {
		pos += 10
		p := pos
		return &stream.Batch{Position: p, Ack: func(context.Context) error { return nil }}
	}))
	for i := range 50 {
		b, _ := src.Read(ctx)
		st.Good().Write(ctx, bytes.Repeat([]byte{'x'}, 500), []byte(fmt.Sprint(i)))
		stream.MarkWritten(st.Good(), b)
		if err := st.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if l.Lag(MarksReader) == 0 {
			t.Fatalf("frame %d is not held before its acknowledgement", i)
		}
		if err := b.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		if lag := l.Lag(MarksReader); lag != 0 {
			t.Fatalf("frame %d still held after its acknowledgement (lag %d)", i, lag)
		}
	}
}

type sourceFunc func() *stream.Batch

func (f sourceFunc) Read(context.Context) (*stream.Batch, error) { return f(), nil }
func (f sourceFunc) Close(context.Context) error                 { return nil }
