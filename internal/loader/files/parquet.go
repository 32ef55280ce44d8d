package files

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/jsonx"
)

// FormatParquet writes good events as Parquet objects: one column per
// enriched field, named and ordered as event.Fields, all optional (an
// empty TSV field is a null):
//
//	string     BYTE_ARRAY (STRING, UTF-8)
//	int        INT32
//	double     DOUBLE
//	bool       BOOLEAN
//	timestamp  INT64 TIMESTAMP(MILLIS, isAdjustedToUTC=true)
//	json       BYTE_ARRAY (STRING) holding the self-describing JSON text
//	           of contexts, derived_contexts and unstruct_event
//
// Each object holds one row group (the rows of its partition in the
// batch, in batch order), PLAIN-encoded data pages of version 1 (the one
// every reader knows), compressed with zstd: read by DuckDB, Spark,
// Athena/Trino and Snowflake, and on enriched events several times
// smaller than snappy for about the same time (dictionary encoding made
// objects larger: event ids and URLs are mostly distinct). The footer's
// created_by is "<artifact> version <version>" of Options.Processor. The
// output is a function of the batch alone: a replay writes the same
// bytes. The object is built in memory, as a gzip object is.
//
// A line whose value does not convert to its column's type (even when
// Options.Trusted), or whose text is not UTF-8, becomes a
// loader_parsing_error bad row.
const FormatParquet = "parquet"

// parquetCodec compresses the pages of Parquet objects.
var parquetCodec compress.Codec = &zstd.Codec{Level: zstd.SpeedDefault}

// parquetSchema is the schema of good Parquet objects.
var parquetSchema = func() *parquet.Schema {
	fields := make([]parquet.Field, event.NumFields)
	for i, f := range event.Fields {
		var n parquet.Node
		switch f.Type {
		case event.String, event.JSON:
			n = parquet.String()
		case event.Int:
			n = parquet.Int(32)
		case event.Double:
			n = parquet.Leaf(parquet.DoubleType)
		case event.Bool:
			n = parquet.Leaf(parquet.BooleanType)
		case event.Timestamp:
			n = parquet.Timestamp(parquet.Millisecond)
		default:
			panic(fmt.Sprintf("files: column %s: no Parquet type for %s", f.Name, f.Type))
		}
		fields[i] = &parquetField{Node: parquet.Optional(n), name: f.Name}
	}
	return parquet.NewSchema("event", orderedGroup(fields))
}()

// orderedGroup is a Parquet group whose columns keep their order
// (parquet.Group sorts them by name).
type orderedGroup []parquet.Field

func (g orderedGroup) ID() int                            { return 0 }
func (g orderedGroup) String() string                     { return parquet.Group{}.String() }
func (g orderedGroup) Type() parquet.Type                 { return parquet.Group{}.Type() }
func (g orderedGroup) Optional() bool                     { return false }
func (g orderedGroup) Repeated() bool                     { return false }
func (g orderedGroup) Required() bool                     { return true }
func (g orderedGroup) Leaf() bool                         { return false }
func (g orderedGroup) Fields() []parquet.Field            { return g }
func (g orderedGroup) Encoding() encoding.Encoding        { return nil }
func (g orderedGroup) Compression() compress.Codec        { return nil }
func (g orderedGroup) GoType() reflect.Type               { return reflect.TypeFor[map[string]any]() }
func (f *parquetField) Name() string                      { return f.name }
func (f *parquetField) Value(reflect.Value) reflect.Value { return reflect.Value{} }

// parquetField is a named column of orderedGroup. Rows are written as
// parquet.Row values, never from Go values, so Value is not used.
type parquetField struct {
	parquet.Node
	name string
}

// parquetObject encodes the rows of one good object. Full chunks of
// rows are written by a goroutine while the next chunk is converted; at
// most one write is under way, and it touches only its chunk and w, so
// an object dropped before close leaves no goroutine behind for long.
type parquetObject struct {
	w     *parquet.Writer
	vals  []parquet.Value // rows being added, NumFields values each
	spare []parquet.Value // the other chunk: being written, or free
	rows  []parquet.Row   // used by the write under way
	done  chan error      // the write under way, nil if none
}

const parquetChunk = 1024 // rows handed to the writer at a time

func newParquetObject(buf *bytes.Buffer, createdBy string) *parquetObject {
	return &parquetObject{w: parquet.NewWriter(buf, parquetSchema,
		parquet.Compression(parquetCodec),
		parquet.DataPageVersion(1),
		createdByOption(createdBy),
	)}
}

// createdByOption sets the created_by of the footer as it is
// (parquet.CreatedBy appends "(build ...)").
type createdByOption string

func (c createdByOption) ConfigureWriter(cfg *parquet.WriterConfig) { cfg.CreatedBy = string(c) }

// add appends a converted row (from parquetRow); the values are copied,
// the byte arrays they point to must live until close returns.
func (p *parquetObject) add(row parquet.Row) error {
	p.vals = append(p.vals, row...)
	if len(p.vals) < parquetChunk*event.NumFields {
		return nil
	}
	if err := p.wait(); err != nil {
		return err
	}
	chunk := p.vals
	p.vals, p.spare = p.spare[:0], chunk
	p.done = make(chan error, 1)
	go func() { p.done <- p.write(chunk) }()
	return nil
}

// wait waits for the write under way.
func (p *parquetObject) wait() error {
	if p.done == nil {
		return nil
	}
	err := <-p.done
	p.done = nil
	return err
}

func (p *parquetObject) write(vals []parquet.Value) error {
	p.rows = p.rows[:0]
	for i := 0; i < len(vals); i += event.NumFields {
		p.rows = append(p.rows, vals[i:i+event.NumFields:i+event.NumFields])
	}
	if _, err := p.w.WriteRows(p.rows); err != nil {
		return fmt.Errorf("files: parquet: %w", err)
	}
	return nil
}

// close writes the rows left and the footer.
func (p *parquetObject) close() error {
	if err := p.wait(); err != nil {
		return err
	}
	if err := p.write(p.vals); err != nil {
		return err
	}
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("files: parquet: %w", err)
	}
	return nil
}

// parquetRow converts an enriched line to a row of parquetSchema,
// appended to row[:0]. Byte array values alias line. The error is an
// *event.ParseError naming every value that does not convert.
func parquetRow(row parquet.Row, line []byte) (parquet.Row, error) {
	row = row[:0]
	var bad []event.InvalidValue
	rest := line
	for i := range event.NumFields {
		j := bytes.IndexByte(rest, '\t')
		var v []byte
		if i == event.NumFields-1 {
			if j >= 0 {
				return row, &event.ParseError{FieldCount: event.NumFields + 1 + bytes.Count(rest[j+1:], []byte{'\t'})}
			}
			v = rest
		} else {
			if j < 0 {
				return row, &event.ParseError{FieldCount: i + 1}
			}
			v, rest = rest[:j], rest[j+1:]
		}
		var val parquet.Value // null
		if len(v) > 0 {
			var msg string
			if val, msg = parquetValue(event.Fields[i].Type, v); msg != "" {
				bad = append(bad, event.InvalidValue{Field: event.Fields[i].Name, Value: string(v), Message: msg})
			}
			val.SetDefinitionLevel(1)
		}
		val.SetColumnIndex(i)
		row = append(row, val)
	}
	if len(bad) > 0 {
		return row, &event.ParseError{Invalid: bad}
	}
	return row, nil
}

func parquetValue(t event.Type, v []byte) (parquet.Value, string) {
	s := unsafe.String(unsafe.SliceData(v), len(v)) // only parsed here
	switch t {
	case event.Int:
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return parquet.Value{}, "not an integer"
		}
		return parquet.Int32Value(int32(n)), ""
	case event.Double:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return parquet.Value{}, "not a number"
		}
		return parquet.DoubleValue(f), ""
	case event.Bool:
		switch s {
		case "0":
			return parquet.BooleanValue(false), ""
		case "1":
			return parquet.BooleanValue(true), ""
		}
		return parquet.Value{}, "not a boolean (0 or 1)"
	case event.Timestamp:
		ts, err := event.ParseTimestamp(s)
		if err != nil {
			return parquet.Value{}, "not a timestamp (yyyy-MM-dd HH:mm:ss.SSS)"
		}
		return parquet.Int64Value(ts.UnixMilli()), ""
	case event.JSON:
		if !jsonx.Valid(v) {
			return parquet.Value{}, "not valid JSON"
		}
	}
	if !utf8.Valid(v) {
		return parquet.Value{}, "not UTF-8"
	}
	return parquet.ByteArrayValue(v), ""
}
