// Package payload holds the CollectorPayload record that the collector writes
// to the raw stream and the enricher reads back, encoded with the Thrift
// binary protocol exactly as Snowplow collectors do, so furrow's raw stream is
// interchangeable with theirs.
package payload

// SchemaURI is the Iglu URI written in every CollectorPayload.
const SchemaURI = "iglu:com.snowplowanalytics.snowplow/CollectorPayload/thrift/1-0-0"

// Field ids of the CollectorPayload Thrift struct (collector-payload-1 IDL).
const (
	fidSchema        = 31337
	fidIPAddress     = 100
	fidTimestamp     = 200
	fidEncoding      = 210
	fidCollector     = 220
	fidUserAgent     = 300
	fidRefererURI    = 310
	fidPath          = 320
	fidQuerystring   = 330
	fidBody          = 340
	fidHeaders       = 350
	fidContentType   = 360
	fidHostname      = 400
	fidNetworkUserID = 410
)

// CollectorPayload is one HTTP request as seen by the collector.
//
// The first five fields are always present on the wire. The optional
// fields are written only when non-empty, so an empty string and an absent
// field decode to the same value.
type CollectorPayload struct {
	Schema    string
	IPAddress string
	Timestamp int64 // milliseconds since the Unix epoch
	Encoding  string
	Collector string

	UserAgent     string
	RefererURI    string
	Path          string
	Querystring   string // raw, still URL-encoded
	Body          string
	Headers       []string // "Name: value"; a bare content type may follow
	ContentType   string
	Hostname      string
	NetworkUserID string
}
