// Package badrows builds Snowplow bad rows: self-describing JSON documents
// under com.snowplowanalytics.snowplow.badrows that carry what failed, why,
// and the input needed to recover it.
package badrows

import (
	"encoding/json"
	"time"
)

// Schemas of the bad rows furrow emits (the versions current Snowplow
// components emit).
const (
	SchemaSizeViolation             = "iglu:com.snowplowanalytics.snowplow.badrows/size_violation/jsonschema/1-0-0"
	SchemaCPFormatViolation         = "iglu:com.snowplowanalytics.snowplow.badrows/collector_payload_format_violation/jsonschema/1-0-0"
	SchemaAdapterFailures           = "iglu:com.snowplowanalytics.snowplow.badrows/adapter_failures/jsonschema/1-0-0"
	SchemaTrackerProtocolViolations = "iglu:com.snowplowanalytics.snowplow.badrows/tracker_protocol_violations/jsonschema/1-0-1"
	SchemaSchemaViolations          = "iglu:com.snowplowanalytics.snowplow.badrows/schema_violations/jsonschema/2-0-1"
	SchemaEnrichmentFailures        = "iglu:com.snowplowanalytics.snowplow.badrows/enrichment_failures/jsonschema/2-0-1"
	SchemaLoaderParsingError        = "iglu:com.snowplowanalytics.snowplow.badrows/loader_parsing_error/jsonschema/2-0-0"
	SchemaGenericError              = "iglu:com.snowplowanalytics.snowplow.badrows/generic_error/jsonschema/1-0-0"
)

// Processor names the component that produced a bad row.
type Processor struct {
	Artifact string `json:"artifact"`
	Version  string `json:"version"`
}

// Timestamp formats t as ISO-8601 UTC with microseconds, as bad rows do.
func Timestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

type envelope struct {
	Schema string `json:"schema"`
	Data   struct {
		Processor Processor `json:"processor"`
		Failure   any       `json:"failure"`
		Payload   any       `json:"payload"`
	} `json:"data"`
}

func build(schema string, p Processor, failure, payload any) []byte {
	var e envelope
	e.Schema = schema
	e.Data.Processor, e.Data.Failure, e.Data.Payload = p, failure, payload
	b, err := json.Marshal(e)
	if err != nil {
		// Every type passed here marshals; a failure is a programming error.
		panic("badrows: " + err.Error())
	}
	return b
}

// Str returns a JSON string or null for "".
func Str(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// SizeViolation: a payload or event larger than a sink accepts.
func SizeViolation(p Processor, at time.Time, maxBytes, actualBytes int, expectation, payload string) []byte {
	return build(SchemaSizeViolation, p, struct {
		Timestamp   string `json:"timestamp"`
		Max         int    `json:"maximumAllowedSizeBytes"`
		Actual      int    `json:"actualSizeBytes"`
		Expectation string `json:"expectation"`
	}{Timestamp(at), maxBytes, actualBytes, expectation}, payload)
}

// CPFormatMessage is either Error or (PayloadField, Value, Expectation).
type CPFormatMessage struct {
	Error        string  `json:"error,omitempty"`
	PayloadField string  `json:"payloadField,omitempty"`
	Value        *string `json:"value,omitempty"`
	Expectation  string  `json:"expectation,omitempty"`
}

// CPFormatViolation: a raw record that is not a usable CollectorPayload.
// payload is the base64 of the raw bytes.
func CPFormatViolation(p Processor, at time.Time, msg CPFormatMessage, payload string) []byte {
	return build(SchemaCPFormatViolation, p, struct {
		Timestamp string          `json:"timestamp"`
		Loader    string          `json:"loader"`
		Message   CPFormatMessage `json:"message"`
	}{Timestamp(at), "thrift", msg}, payload)
}

// GenericError: anything else.
func GenericError(p Processor, at time.Time, errs []string, payload string) []byte {
	return build(SchemaGenericError, p, struct {
		Timestamp string   `json:"timestamp"`
		Errors    []string `json:"errors"`
	}{Timestamp(at), errs}, payload)
}

// Message is one failure in adapter_failures, tracker_protocol_violations,
// schema_violations or enrichment_failures. It is any of the shapes those
// schemas allow; build it with the helpers below.
type Message = any

// InputData: a field that did not meet expectations. value may be null.
type InputData struct {
	Field       string  `json:"field"`
	Value       *string `json:"value"`
	Expectation string  `json:"expectation"`
}

// NotJSON: a field that should hold JSON.
type NotJSON struct {
	Field string  `json:"field"`
	Value *string `json:"value"`
	Error string  `json:"error"`
}

// NotIglu: JSON that is not self-describing.
type NotIglu struct {
	JSON  json.RawMessage `json:"json"`
	Error string          `json:"error"`
}

// CriterionMismatch: a self-describing JSON of an unexpected schema.
type CriterionMismatch struct {
	SchemaKey       string `json:"schemaKey"`
	SchemaCriterion string `json:"schemaCriterion"`
}

// IgluError: a resolution or validation failure for SchemaKey.
type IgluError struct {
	SchemaKey string `json:"schemaKey"`
	Error     any    `json:"error"` // ResolutionError or ValidationError
}

// ResolutionError lists what each repository answered.
type ResolutionError struct {
	Error         string        `json:"error"` // "ResolutionError"
	LookupHistory []RepoHistory `json:"lookupHistory"`
}

// RepoHistory is one repository's part of a ResolutionError.
type RepoHistory struct {
	Repository  string      `json:"repository"`
	Errors      []RepoError `json:"errors"`
	Attempts    int         `json:"attempts"`
	LastAttempt string      `json:"lastAttempt"`
}

// RepoError is one failed lookup.
type RepoError struct {
	Error   string `json:"error"` // RepoFailure, ClientFailure, NotFound
	Message string `json:"message,omitempty"`
}

// ValidationError: data invalid against its schema (DataReports), or a
// schema that cannot be used (SchemaIssues).
type ValidationError struct {
	Error        string        `json:"error"` // "ValidationError"
	DataReports  []DataReport  `json:"dataReports,omitempty"`
	SchemaIssues []SchemaIssue `json:"schemaIssues,omitempty"`
}

// DataReport is one validation failure.
type DataReport struct {
	Message string   `json:"message"`
	Path    string   `json:"path"`
	Keyword string   `json:"keyword"`
	Targets []string `json:"targets"`
}

// SchemaIssue is one problem with a schema.
type SchemaIssue struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// EnrichmentMessage is one entry of enrichment_failures.
type EnrichmentMessage struct {
	Enrichment *EnrichmentID `json:"enrichment"`
	Message    Message       `json:"message"`
}

// EnrichmentID identifies the enrichment that failed.
type EnrichmentID struct {
	SchemaKey  string `json:"schemaKey"`
	Identifier string `json:"identifier"`
}

// ExternalError is an enrichment failure not caused by the input.
type ExternalError struct {
	Error string `json:"error"`
}

// NameValue is one querystring or event parameter.
type NameValue struct {
	Name  string  `json:"name"`
	Value *string `json:"value"`
}

// CollectorPayload is the JSON form of a collector payload, used by
// adapter_failures and tracker_protocol_violations.
type CollectorPayload struct {
	Vendor        string      `json:"vendor"`
	Version       string      `json:"version"`
	Querystring   []NameValue `json:"querystring"`
	ContentType   *string     `json:"contentType"`
	Body          *string     `json:"body"`
	Collector     string      `json:"collector"`
	Encoding      string      `json:"encoding"`
	Hostname      *string     `json:"hostname"`
	Timestamp     *string     `json:"timestamp"`
	IPAddress     *string     `json:"ipAddress"`
	Useragent     *string     `json:"useragent"`
	RefererURI    *string     `json:"refererUri"`
	Headers       []string    `json:"headers"`
	NetworkUserID *string     `json:"networkUserId"`
}

// AdapterFailures: a payload no adapter could turn into events.
func AdapterFailures(p Processor, at time.Time, msgs []Message, payload CollectorPayload) []byte {
	return adapterLike(SchemaAdapterFailures, p, at, msgs, payload)
}

// TrackerProtocolViolations: a tp2 or redirect payload that breaks the
// tracker protocol.
func TrackerProtocolViolations(p Processor, at time.Time, msgs []Message, payload CollectorPayload) []byte {
	return adapterLike(SchemaTrackerProtocolViolations, p, at, msgs, payload)
}

func adapterLike(schema string, p Processor, at time.Time, msgs []Message, payload CollectorPayload) []byte {
	return build(schema, p, struct {
		Timestamp string    `json:"timestamp"`
		Vendor    string    `json:"vendor"`
		Version   string    `json:"version"`
		Messages  []Message `json:"messages"`
	}{Timestamp(at), payload.Vendor, payload.Version, msgs}, payload)
}

// RawEvent is the raw part of an enrichment payload.
type RawEvent struct {
	Vendor      string      `json:"vendor"`
	Version     string      `json:"version"`
	Parameters  []NameValue `json:"parameters"`
	ContentType *string     `json:"contentType"`
	LoaderName  string      `json:"loaderName"`
	Encoding    string      `json:"encoding"`
	Hostname    *string     `json:"hostname"`
	Timestamp   *string     `json:"timestamp"`
	IPAddress   *string     `json:"ipAddress"`
	Useragent   *string     `json:"useragent"`
	RefererURI  *string     `json:"refererUri"`
	Headers     []string    `json:"headers"`
	UserID      *string     `json:"userId"`
}

// EnrichmentPayload is the raw event and the partially enriched event.
// Enriched is a JSON object of all 131 fields.
type EnrichmentPayload struct {
	Raw      RawEvent        `json:"raw"`
	Enriched json.RawMessage `json:"enriched"`
}

// SchemaViolations: an event whose atomic fields, entities or custom event
// did not validate.
func SchemaViolations(p Processor, at time.Time, msgs []Message, payload EnrichmentPayload) []byte {
	return build(SchemaSchemaViolations, p, struct {
		Timestamp string    `json:"timestamp"`
		Messages  []Message `json:"messages"`
	}{Timestamp(at), msgs}, payload)
}

// EnrichmentFailures: an event an enrichment could not process.
func EnrichmentFailures(p Processor, at time.Time, msgs []EnrichmentMessage, payload EnrichmentPayload) []byte {
	return build(SchemaEnrichmentFailures, p, struct {
		Timestamp string              `json:"timestamp"`
		Messages  []EnrichmentMessage `json:"messages"`
	}{Timestamp(at), msgs}, payload)
}

// ParsingFailure is why a loader could not read an enriched TSV line:
// Type is NotTSV, FieldNumberMismatch (with FieldCount) or RowDecodingError
// (with Errors).
type ParsingFailure struct {
	Type       string         `json:"type"`
	FieldCount *int           `json:"fieldCount,omitempty"`
	Errors     []InvalidValue `json:"errors,omitempty"`
}

// InvalidValue is one column that could not be decoded.
type InvalidValue struct {
	Type    string `json:"type"` // "InvalidValue"
	Key     string `json:"key"`
	Value   string `json:"value"`
	Message string `json:"message"`
}

// LoaderParsingError: an enriched TSV line a loader could not parse.
func LoaderParsingError(p Processor, f ParsingFailure, tsv string) []byte {
	return build(SchemaLoaderParsingError, p, f, tsv)
}

// Name returns the bad row type from a schema URI, e.g. "schema_violations".
func Name(schema string) string {
	const prefix = "iglu:com.snowplowanalytics.snowplow.badrows/"
	if len(schema) <= len(prefix) {
		return ""
	}
	rest := schema[len(prefix):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '/' {
			return rest[:i]
		}
	}
	return rest
}
