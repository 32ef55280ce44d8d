// Package event describes the enriched Snowplow event: its 131 columns,
// their types and length limits, and conversions shared by the enricher
// and the loaders.
package event

// Type is the logical type of a column.
type Type uint8

const (
	String Type = iota
	Int
	Double
	Bool
	Timestamp
	JSON // contexts, derived_contexts, unstruct_event
)

func (t Type) String() string {
	return [...]string{"string", "int", "double", "bool", "timestamp", "json"}[t]
}

// Field describes one column.
type Field struct {
	Name   string
	Type   Type
	MaxLen int // default limit on string length, 0 for none
}

// TimestampLayout is how timestamps are written in the enriched TSV (UTC).
const TimestampLayout = "2006-01-02 15:04:05.000"

var byName = func() map[string]int {
	m := make(map[string]int, NumFields)
	for i, f := range Fields {
		m[f.Name] = i
	}
	return m
}()

// Index returns the column index of name.
func Index(name string) (int, bool) {
	i, ok := byName[name]
	return i, ok
}
