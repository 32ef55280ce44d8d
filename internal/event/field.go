// Package event describes the enriched Snowplow event: its 131 columns,
// their types and length limits, and conversions shared by the enricher
// and the loaders.
package event

import "time"

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

// AppendTimestamp appends t in UTC as TimestampLayout. It is what
// t.UTC().AppendFormat(b, TimestampLayout) returns, several times faster:
// every event carries several timestamps.
func AppendTimestamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, TimestampLayout)
	}
	hour, min, sec := t.Clock()
	ms := t.Nanosecond() / 1e6
	return append(b,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), ' ',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+min/10), byte('0'+min%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
}

// ParseTimestamp reads a TimestampLayout value as UTC, like
// time.Parse(TimestampLayout, s) but without its generality in the usual
// case.
func ParseTimestamp(s string) (time.Time, error) {
	if len(s) == 23 && s[4] == '-' && s[7] == '-' && s[10] == ' ' && s[13] == ':' && s[16] == ':' && s[19] == '.' {
		var n [23]int
		ok := true
		for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22} {
			c := s[i]
			if c < '0' || c > '9' {
				ok = false
				break
			}
			n[i] = int(c - '0')
		}
		if ok {
			year := n[0]*1000 + n[1]*100 + n[2]*10 + n[3]
			month, day := n[5]*10+n[6], n[8]*10+n[9]
			hour, min, sec := n[11]*10+n[12], n[14]*10+n[15], n[17]*10+n[18]
			ms := n[20]*100 + n[21]*10 + n[22]
			if month >= 1 && month <= 12 && day >= 1 && day <= daysIn(month, year) && hour < 24 && min < 60 && sec < 60 {
				return time.Date(year, time.Month(month), day, hour, min, sec, ms*1e6, time.UTC), nil
			}
		}
	}
	return time.Parse(TimestampLayout, s)
}

func daysIn(month, year int) int {
	if month == 2 {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	if month == 4 || month == 6 || month == 9 || month == 11 {
		return 30
	}
	return 31
}
