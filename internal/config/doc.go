// Package config holds furrow's configuration: defaults that run
// everything embedded, an optional YAML file on top (Load), then Validate,
// which reports every error at once.
//
// # Sections
//
// Each section of the file (collector, log, enrich, duckdb, micro, sql)
// has its own type with a Default...Config function and a Validate
// method; Config.Validate runs them all and names each error with its
// section. app.Check adds what needs the disk.
//
// # Environment references
//
// A scalar value of the file (a mapping's value or a list's element; not
// a key, not a comment) may refer to environment variables:
//
//	${NAME}          the value of NAME, which must be set (it may be empty)
//	${NAME:-default} the value of NAME, or default when NAME is unset or empty
//	$$               one literal $
//
// NAME is a letter or _, then letters, digits or _. The default is the
// text up to the first }, as it stands: it cannot hold a } or another
// reference. A $ followed by anything else is kept as it is, so "$5" and
// "^a$" need no escape; but "${" must start a well-formed reference, or
// the file is refused (write "$${" for a literal "${").
//
// References are replaced after the file is parsed, in the parsed value
// of each scalar, never in the file's text: whatever a variable holds (a
// newline, ": ", "- ", "#", "[a, b]", "*alias", "${OTHER}") is the text
// of that one value. It cannot add a setting, end the value early or
// start a list, and it is not expanded again. The type of a plain
// (unquoted) value is then resolved from the expanded text as if that had
// been written there: `threads: ${N}` with N=4 is the number 4,
// `enabled: ${ON}` with ON=false a boolean, and an empty result is YAML's
// null, so the setting keeps its default. A quoted value ("${N}") or one
// with an explicit tag (!!str ${N}) stays a string whatever it holds.
// Inside a flow list or mapping ([...] or {...}) quote the reference:
// there YAML itself reads { as the start of a mapping.
//
// Every variable referred to without a default that is not set is
// reported in one *EnvError, with the lines of the values that refer to
// it.
//
// # Secrets
//
// A Secret setting prints as [redacted] everywhere (fmt, YAML, JSON,
// slog), so `furrow config` and logs show none; give its value with an
// environment reference to keep it out of the file too.
package config
