package enrich

import (
	"encoding/json"
	"io/fs"
	"path"
	"sort"

	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/iglu/builtin"
	"github.com/furrow-io/furrow/internal/jsonx"
)

// The tracker protocol envelopes are checked on every event. Their schemas
// are fixed and simple, so the enricher checks documents that satisfy them
// directly, and only falls back to the schema validator (for its error
// report) when a document does not. The definitions are read from the
// built-in schema files, so there is one source of truth.

type payloadDataDef struct {
	allowed  map[string]bool
	required []string
}

var payloadDataDefs = loadPayloadDataDefs()

func loadPayloadDataDefs() map[iglu.SchemaVer]payloadDataDef {
	defs := map[iglu.SchemaVer]payloadDataDef{}
	dir := "schemas/com.snowplowanalytics.snowplow/payload_data/jsonschema"
	ents, err := fs.ReadDir(builtin.FS, dir)
	if err != nil {
		panic(err)
	}
	for _, e := range ents {
		key, err := iglu.ParseSchemaPath("com.snowplowanalytics.snowplow/payload_data/jsonschema/" + e.Name())
		if err != nil {
			panic(err)
		}
		raw, _ := fs.ReadFile(builtin.FS, path.Join(dir, e.Name()))
		var doc struct {
			Items struct {
				Properties map[string]struct {
					Type string `json:"type"`
				} `json:"properties"`
				Required             []string `json:"required"`
				AdditionalProperties bool     `json:"additionalProperties"`
			} `json:"items"`
			MinItems int `json:"minItems"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			panic(err)
		}
		// The fast path relies on this shape; fail loudly if a schema
		// file is ever changed into something else.
		if doc.MinItems != 1 || doc.Items.AdditionalProperties {
			panic("payload_data " + e.Name() + ": unexpected schema shape")
		}
		d := payloadDataDef{allowed: map[string]bool{}, required: doc.Items.Required}
		for k, p := range doc.Items.Properties {
			if p.Type != "string" {
				panic("payload_data " + e.Name() + ": property " + k + " is not a string")
			}
			d.allowed[k] = true
		}
		defs[key.Version] = d
	}
	return defs
}

// fastPayloadData returns each event's parameters if data (the payload_data
// array) is valid against the known definition of version v; ok is false
// when it is not, or the version is not known, and the caller must use the
// schema validator instead.
func fastPayloadData(v iglu.SchemaVer, data []byte) ([][]Param, bool) {
	def, known := payloadDataDefs[v]
	if !known || len(data) == 0 || data[0] != '[' {
		return nil, false
	}
	var out [][]Param
	valid := true
	_, err := jsonx.Array(data, 0, func(item []byte) bool {
		if item[0] != '{' {
			valid = false
			return false
		}
		params := make([]Param, 0, 24)
		_, err := jsonx.Object(item, 0, func(k, val []byte) bool {
			name, ok1 := jsonx.String(k)
			value, ok2 := jsonx.String(val)
			if !ok1 || !ok2 || !def.allowed[name] {
				valid = false
				return false
			}
			for i := range params {
				if params[i].Name == name {
					params[i].Value = value
					return true
				}
			}
			params = append(params, Param{Name: name, Value: value})
			return true
		})
		if err != nil || !valid {
			valid = false
			return false
		}
		for _, r := range def.required {
			found := false
			for _, p := range params {
				if p.Name == r {
					found = true
					break
				}
			}
			if !found {
				valid = false
				return false
			}
		}
		sort.Slice(params, func(i, j int) bool { return params[i].Name < params[j].Name })
		out = append(out, params)
		return true
	})
	if err != nil || !valid || len(out) == 0 {
		return nil, false
	}
	return out, true
}

// Wrapper schemas whose shape the enricher checks itself: unstruct_event
// 1-0-0 (an object with exactly schema and data) and contexts 1-0-0 (a
// non-empty array of such objects) and 1-0-1 (an array of them). An entity
// that ParseSelfDescribing accepts satisfies the entity part of these
// schemas, because its URI parser is stricter than their pattern.
func isKnownWrapper(k iglu.SchemaKey) bool {
	if k.Vendor != "com.snowplowanalytics.snowplow" || k.Format != "jsonschema" || k.Version.Model != 1 || k.Version.Revision != 0 {
		return false
	}
	switch k.Name {
	case "unstruct_event":
		return k.Version.Addition == 0
	case "contexts":
		return k.Version.Addition <= 1
	}
	return false
}
