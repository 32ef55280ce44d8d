module github.com/furrow-io/furrow

go 1.26.8

require github.com/apache/thrift v0.22.0
