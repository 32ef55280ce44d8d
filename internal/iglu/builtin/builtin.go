// Package builtin holds the few schemas the enricher needs for every event
// (the tracker protocol envelopes), so furrow validates the protocol
// without reaching any registry. They were written for furrow from the
// published protocol; Iglu Central remains the source for everything else.
package builtin

import "embed"

// FS holds schemas/<vendor>/<name>/jsonschema/<version>.
//
//go:embed schemas
var FS embed.FS
