package loader

import (
	"errors"

	"github.com/furrow-io/furrow/internal/badrows"
	"github.com/furrow-io/furrow/internal/event"
)

// ParsingError is the loader_parsing_error bad row of an enriched line a
// destination could not take: FieldNumberMismatch for a wrong field
// count, RowDecodingError with each value that failed (an
// *event.ParseError), or with err's text for any other reason.
func ParsingError(p badrows.Processor, err error, line []byte) []byte {
	var f badrows.ParsingFailure
	var pe *event.ParseError
	switch {
	case errors.As(err, &pe) && pe.FieldCount != 0:
		n := pe.FieldCount
		f = badrows.ParsingFailure{Type: "FieldNumberMismatch", FieldCount: &n}
	case errors.As(err, &pe):
		f.Type = "RowDecodingError"
		for _, iv := range pe.Invalid {
			f.Errors = append(f.Errors, badrows.InvalidValue{Type: "InvalidValue", Key: iv.Field, Value: iv.Value, Message: iv.Message})
		}
	default:
		f = badrows.ParsingFailure{Type: "RowDecodingError", Errors: []badrows.InvalidValue{{Type: "InvalidValue", Key: "line", Message: err.Error()}}}
	}
	return badrows.LoaderParsingError(p, f, string(line))
}
