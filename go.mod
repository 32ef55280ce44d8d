module github.com/furrow-io/furrow

go 1.26.8

require github.com/apache/thrift v0.22.0

require (
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3 // indirect
	golang.org/x/text v0.43.0 // indirect
)
