module github.com/furrow-io/furrow

go 1.26.8

require (
	github.com/apache/thrift v0.22.0
	github.com/google/uuid v1.6.0
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
	github.com/snowplow/snowplow-golang-analytics-sdk v0.4.0
	golang.org/x/text v0.43.0
)

require (
	github.com/json-iterator/go v1.1.12 // indirect
	github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd // indirect
	github.com/modern-go/reflect2 v1.0.2 // indirect
)
