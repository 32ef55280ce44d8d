package config

import (
	"encoding/json"
	"fmt"
	"log/slog"

	"gopkg.in/yaml.v3"
)

// Redacted is what a set Secret prints as.
const Redacted = "[redacted]"

// Secret is a setting that must not be shown: a password, a DSN with one
// in it, a token. In YAML it is a string; write it as an environment
// reference (password: ${DB_PASSWORD}) to keep it out of the file.
//
// Every printer that asks the value how to print itself prints Redacted
// when the secret is set and "" when it is empty: fmt (all verbs, through
// Format, also inside structs for exported fields), String, YAML
// (MarshalYAML, so `furrow config` prints no secret), JSON (MarshalJSON),
// encoding.TextMarshaler and slog (LogValue). Only Value returns the
// text. Printers that read the bytes without asking still see them: fmt
// printing an unexported field, reflection, unsafe, a conversion to
// string; keep Secret fields exported and convert only to use the value.
type Secret string

// Value is the secret in clear text, for the code that uses it.
func (s Secret) Value() string { return string(s) }

// String is Redacted, or "" when the secret is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// Format prints String for every verb and flag, so %v, %+v, %#v, %s, %q
// and %x show no more than String does.
func (s Secret) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.String())
}

// LogValue makes slog log String.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalYAML writes String.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON writes String as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText writes String.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalYAML reads a string. It refuses Redacted itself, which is what
// `furrow config` printed in place of the secret: a file made from that
// output must be given the secret again, not the placeholder.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	var v string
	if err := n.Decode(&v); err != nil {
		return err
	}
	if v == Redacted {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s is what furrow prints in place of a secret; give the secret itself, e.g. as ${NAME} from the environment", n.Line, Redacted)}}
	}
	*s = Secret(v)
	return nil
}
