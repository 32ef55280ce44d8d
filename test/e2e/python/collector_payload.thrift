// Snowplow's raw event record, CollectorPayload 1-0-0, as its collectors
// serialize it (Thrift binary protocol). Field ids and types as in
// snowplow-compat.md; written here for the test's own Thrift encoder.
struct CollectorPayload {
  31337: string schema
  100: string ipAddress
  200: i64 timestamp
  210: string encoding
  220: string collector
  300: optional string userAgent
  310: optional string refererUri
  320: optional string path
  330: optional string querystring
  340: optional string body
  350: optional list<string> headers
  360: optional string contentType
  400: optional string hostname
  410: optional string networkUserId
}
