// Package builtin holds the few schemas the enricher needs for every event
// (the tracker protocol envelopes), so furrow validates the protocol
// without reaching any registry, and those of the enrichment
// configurations furrow implements and the entities they emit, so that
// they are validated offline too. The protocol schemas were written for
// furrow from the published protocol; the enrichment ones are copies from
// Iglu Central (see IGLU-CENTRAL.md), which remains the source for
// everything else.
package builtin

import "embed"

// FS holds schemas/<vendor>/<name>/jsonschema/<version>.
//
//go:embed schemas
var FS embed.FS
