// Package all registers every enrichment furrow implements. Import it
// for its side effect wherever enrichment configurations are loaded:
//
//	import _ "github.com/furrow-io/furrow/internal/enrich/step/all"
package all

import (
	_ "github.com/furrow-io/furrow/internal/enrich/step/anonip"
	_ "github.com/furrow-io/furrow/internal/enrich/step/pii"
)
