package iglu

import "github.com/furrow-io/furrow/internal/iglu/builtin"

// BuiltinName is the name of the repository of schemas built into furrow.
const BuiltinName = "furrow built-in"

// Builtin returns the repository of schemas compiled into furrow.
func Builtin(name string, priority int, vendorPrefixes []string) *FSRepo {
	if name == "" {
		name = BuiltinName
	}
	return NewFSRepo(name, builtin.FS, priority, vendorPrefixes)
}

// IgluCentralURI is the public registry used when no resolver is configured.
const IgluCentralURI = "http://iglucentral.com"

// DefaultRepositories is what furrow uses without a resolver config: the
// built-in protocol schemas, then Iglu Central.
func DefaultRepositories() []Repository {
	return []Repository{
		Builtin(BuiltinName, 0, []string{"com.snowplowanalytics.snowplow"}),
		NewHTTPRepo("Iglu Central", IgluCentralURI, "", 0, []string{"com.snowplowanalytics"}, nil),
	}
}
