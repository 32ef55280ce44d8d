package pii

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/enrich"
	ev "github.com/furrow-io/furrow/internal/event"
	"github.com/furrow-io/furrow/internal/iglu"
	"github.com/furrow-io/furrow/internal/payload"
)

var key201 = iglu.SchemaKey{Vendor: "com.snowplowanalytics.snowplow.enrichments", Name: "pii_enrichment_config", Format: "jsonschema", Version: iglu.SchemaVer{Model: 2, Addition: 1}}

var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)

// independent computes the documented formula with crypto/* directly.
func independent(h string, v, salt string) string {
	in := []byte(v + salt)
	switch h {
	case "MD5":
		s := md5.Sum(in)
		return hex.EncodeToString(s[:])
	case "SHA-1":
		s := sha1.Sum(in)
		return hex.EncodeToString(s[:])
	case "SHA-256":
		s := sha256.Sum256(in)
		return hex.EncodeToString(s[:])
	case "SHA-384":
		s := sha512.Sum384(in)
		return hex.EncodeToString(s[:])
	case "SHA-512":
		s := sha512.Sum512(in)
		return hex.EncodeToString(s[:])
	}
	panic(h)
}

func TestScrambleEveryHash(t *testing.T) {
	long := strings.Repeat("é", 300) // past the stack buffer
	for _, name := range []string{"MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512"} {
		h, ok := ParseHash(name)
		if !ok || h.String() != name {
			t.Fatalf("ParseHash(%q) = %v, %v", name, h, ok)
		}
		for _, v := range []string{"john@acme.com", "", "ünïcode ✓", long} {
			t.Run(name+"/"+v[:min(len(v), 12)], func(t *testing.T) {
				got := Scrambler{Hash: h, Salt: "pepper123"}.Scramble(v)
				if want := independent(name, v, "pepper123"); got != want {
					t.Errorf("got %s, want %s", got, want)
				}
			})
		}
	}
	// MD2 has no Go implementation to compare with: RFC 1319's vectors,
	// split between value and salt.
	md2 := Scrambler{Hash: MD2, Salt: "c"}
	if got := md2.Scramble("ab"); got != "da853b0d3f88d99b30283a69e6ded6bb" {
		t.Errorf("MD2 of abc = %s", got)
	}
	if got := (Scrambler{Hash: MD2, Salt: "digest"}).Scramble("message "); got != "ab4f496bfb2a530b219ff33031fe06b0" {
		t.Errorf("MD2 of message digest = %s", got)
	}
	// Enrich's published fact: SHA-256 of john@acme.com with salt pepper123.
	if got := (Scrambler{Hash: SHA256, Salt: "pepper123"}).Scramble("john@acme.com"); got != "7d8a4beae5bc9d314600667d2f410918f9af265017a6ade99f60a9c8f3aac6e9" {
		t.Errorf("got %s", got)
	}
}

// newStep builds a step from a 2-0-1 data object.
func newStep(t *testing.T, data string) *Step {
	t.Helper()
	s, err := New(context.Background(), enrich.StepConfig{Key: key201, Data: json.RawMessage(data),
		Deps: enrich.Deps{Now: func() time.Time { return fixedNow }, NewUUID: func() string { return "00000000-0000-4000-8000-000000000099" }}})
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Step)
}

func cfgJSON(emit bool, extra string, hash string, pii ...string) string {
	return fmt.Sprintf(`{"vendor":"com.snowplowanalytics.snowplow.enrichments","name":"pii_enrichment_config","enabled":true,"emitEvent":%v%s,
"parameters":{"pii":[%s],"strategy":{"pseudonymize":{"hashFunction":%q,"salt":"pepper123"}}}}`, emit, extra, strings.Join(pii, ","), hash)
}

func pojo(f string) string { return `{"pojo":{"field":"` + f + `"}}` }
func jsonLoc(field, crit, path string) string {
	b, _ := json.Marshal(map[string]any{"json": map[string]string{"field": field, "schemaCriterion": crit, "jsonPath": path}})
	return string(b)
}

func sdj(uri, data string) iglu.SelfDescribing {
	k, err := iglu.ParseSchemaKey(uri)
	if err != nil {
		panic(err)
	}
	return iglu.SelfDescribing{Key: k, Data: json.RawMessage(data)}
}

// e7Event is the event of Enrich's PiiPseudonymizerEnrichmentSpec e7.
func e7Event() *enrich.Event {
	e := &enrich.Event{}
	e.F[ev.AppID] = "ads"
	e.F[ev.EventID] = "11111111-2222-4333-8444-555555555555"
	e.F[ev.UserID] = "john@acme.com"
	e.F[ev.UserIPAddress] = "70.46.123.145"
	e.F[ev.UserFingerprint] = "its_you_again!"
	e.F[ev.EtlTstamp] = "1970-01-18 08:40:00.000"
	e.F[ev.CollectorTstamp] = "2017-07-14 03:39:39.000"
	e.F[ev.VEtl] = "furrow-0.0.0-test"
	e.F[ev.VCollector] = "ssc-test"
	e.Unstruct = &iglu.SelfDescribing{}
	*e.Unstruct = sdj("iglu:com.mailgun/message_clicked/jsonschema/1-0-0",
		`{"recipient":"alice@example.com","city":"San Francisco","ip":"50.56.129.169","myVar2":"awesome","timestamp":"2016-06-21T17:11:47.000Z","url":"https://www.example.com/","user-agent":"Mozilla/5.0","domain":"sandboxbcd3ccb1a529415db665622619a61616.mailgun.org","device-type":"desktop","my_var_1":"Mailgun Variable #1","event":"clicked"}`)
	e.Contexts = []iglu.SelfDescribing{
		sdj("iglu:com.acme/email_sent/jsonschema/1-0-0", `{"emailAddress":"jim@acme.com","emailAddress2":"bob@acme.com"}`),
		sdj("iglu:com.acme/email_sent/jsonschema/1-1-0", `{"emailAddress":"tim@acme.com","emailAddress2":"tom@acme.com","schema":"iglu:com.acme/email_sent/jsonschema/1-0-0","data":{"emailAddress":"jim@acme.com","emailAddress2":"bob@acme.com"}}`),
	}
	return e
}

var e7Config = cfgJSON(true, "", "SHA-256",
	pojo("user_id"), pojo("user_ipaddress"), pojo("ip_domain"), pojo("user_fingerprint"),
	jsonLoc("unstruct_event", "iglu:com.mailgun/message_clicked/jsonschema/1-0-0", "$.ip"),
	jsonLoc("contexts", "iglu:com.acme/email_sent/jsonschema/1-0-*", "$.emailAddress"),
	jsonLoc("contexts", "iglu:com.acme/email_sent/jsonschema/1-1-0", "$.data.emailAddress2"),
)

// e7Expected is the pii_transformation data Enrich's spec expects.
const e7Expected = `{"pii":{"pojo":[` +
	`{"fieldName":"user_fingerprint","originalValue":"its_you_again!","modifiedValue":"27abac60dff12792c6088b8d00ce7f25c86b396b8c3740480cd18e21068ecff4"},` +
	`{"fieldName":"user_ipaddress","originalValue":"70.46.123.145","modifiedValue":"dd9720903c89ae891ed5c74bb7a9f2f90f6487927ac99afe73b096ad0287f3f5"},` +
	`{"fieldName":"user_id","originalValue":"john@acme.com","modifiedValue":"7d8a4beae5bc9d314600667d2f410918f9af265017a6ade99f60a9c8f3aac6e9"}],` +
	`"json":[` +
	`{"fieldName":"contexts","originalValue":"bob@acme.com","modifiedValue":"1c6660411341411d5431669699149283d10e070224be4339d52bbc4b007e78c5","jsonPath":"$.data.emailAddress2","schema":"iglu:com.acme/email_sent/jsonschema/1-1-0"},` +
	`{"fieldName":"contexts","originalValue":"jim@acme.com","modifiedValue":"72f323d5359eabefc69836369e4cabc6257c43ab6419b05dfb2211d0e44284c6","jsonPath":"$.emailAddress","schema":"iglu:com.acme/email_sent/jsonschema/1-0-0"},` +
	`{"fieldName":"unstruct_event","originalValue":"50.56.129.169","modifiedValue":"269c433d0cc00395e3bc5fe7f06c5ad822096a38bec2d8a005367b52c0dfb428","jsonPath":"$.ip","schema":"iglu:com.mailgun/message_clicked/jsonschema/1-0-0"}]},` +
	`"strategy":{"pseudonymize":{"hashFunction":"SHA-256"}}}`

// TestEnrichSpecE7 replays Enrich's e7 case: pojo and json fields hashed,
// the pii_transformation event as Enrich builds it.
func TestEnrichSpecE7(t *testing.T) {
	s := newStep(t, e7Config)
	e := e7Event()
	if err := s.Enrich(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	h := func(v string) string { return independent("SHA-256", v, "pepper123") }
	for col, want := range map[int]string{ev.UserID: h("john@acme.com"), ev.UserIPAddress: h("70.46.123.145"), ev.UserFingerprint: h("its_you_again!"), ev.IpDomain: "", ev.AppID: "ads"} {
		if e.F[col] != want {
			t.Errorf("%s = %q, want %q", ev.Fields[col].Name, e.F[col], want)
		}
	}
	if want := `{"emailAddress":"` + h("jim@acme.com") + `","emailAddress2":"bob@acme.com"}`; string(e.Contexts[0].Data) != want {
		t.Errorf("context 0 = %s\nwant %s", e.Contexts[0].Data, want)
	}
	if want := `{"emailAddress":"tim@acme.com","emailAddress2":"tom@acme.com","schema":"iglu:com.acme/email_sent/jsonschema/1-0-0","data":{"emailAddress":"jim@acme.com","emailAddress2":"` + h("bob@acme.com") + `"}}`; string(e.Contexts[1].Data) != want {
		t.Errorf("context 1 = %s\nwant %s", e.Contexts[1].Data, want)
	}
	if !strings.Contains(string(e.Unstruct.Data), `"ip":"`+h("50.56.129.169")+`"`) || !strings.Contains(string(e.Unstruct.Data), `"recipient":"alice@example.com"`) {
		t.Errorf("unstruct = %s", e.Unstruct.Data)
	}

	x := emittedOf(t, e)
	if got := string(x.Unstruct.Data); got != e7Expected {
		t.Errorf("pii_transformation =\n%s\nwant\n%s", got, e7Expected)
	}
	want := map[int]string{
		ev.AppID: "ads", ev.Platform: "srv", ev.EtlTstamp: "1970-01-18 08:40:00.000", ev.CollectorTstamp: "2017-07-14 03:39:39.000",
		ev.Event: "pii_transformation", ev.EventID: "00000000-0000-4000-8000-000000000099",
		ev.VEtl: "furrow-0.0.0-test", ev.VCollector: "ssc-test",
		ev.DerivedTstamp: "2026-01-02 03:04:05.678", ev.TrueTstamp: "2026-01-02 03:04:05.678",
		ev.EventVendor: "com.snowplowanalytics.snowplow", ev.EventName: "pii_transformation", ev.EventFormat: "jsonschema", ev.EventVersion: "1-0-0",
	}
	for i := range x.F {
		if x.F[i] != want[i] {
			t.Errorf("emitted %s = %q, want %q", ev.Fields[i].Name, x.F[i], want[i])
		}
	}
	if x.Unstruct.Key != TransformationKey {
		t.Errorf("unstruct schema %s", x.Unstruct.Key)
	}
	if len(x.Contexts) != 1 || x.Contexts[0].Key != ParentEventKey || string(x.Contexts[0].Data) != `{"parentEventId":"11111111-2222-4333-8444-555555555555"}` {
		t.Errorf("contexts %+v", x.Contexts)
	}
	validate(t, x.Unstruct.Key, x.Unstruct.Data)
	validate(t, x.Contexts[0].Key, x.Contexts[0].Data)
}

// emittedOf returns the one event e's steps emitted.
func emittedOf(t *testing.T, e *enrich.Event) *enrich.Event {
	t.Helper()
	if n := len(e.Emitted()); n != 1 {
		t.Fatalf("%d events emitted, want 1", n)
	}
	return e.Emitted()[0]
}

var builtinResolver = iglu.NewResolver(iglu.ResolverOptions{Repositories: []iglu.Repository{iglu.Builtin("", 0, nil)}})

// validate checks data against its schema in furrow's built-in repository.
func validate(t *testing.T, key iglu.SchemaKey, data []byte) {
	t.Helper()
	schema, err := builtinResolver.Lookup(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := iglu.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(v); err != nil {
		t.Errorf("%s does not validate: %v\n%s", key, err, data)
	}
}

func TestTransformationJSONValidates(t *testing.T) {
	pojoC := Change{Field: "user_id", Original: `a "quoted" value`, Modified: strings.Repeat("f", 128)}
	jsonC := Change{Field: "derived_contexts", Original: "x", Modified: "y", JSONPath: "$..['a']", Schema: "iglu:com.acme/x/jsonschema/1-0-0"}
	for _, tc := range []struct {
		name    string
		changes []Change
		want    string
	}{
		{"pojo only", []Change{pojoC}, `{"pii":{"pojo":[{"fieldName":"user_id","originalValue":"a \"quoted\" value","modifiedValue":"` + strings.Repeat("f", 128) + `"}]},"strategy":{"pseudonymize":{"hashFunction":"MD2"}}}`},
		{"json only", []Change{jsonC}, `{"pii":{"json":[{"fieldName":"derived_contexts","originalValue":"x","modifiedValue":"y","jsonPath":"$..['a']","schema":"iglu:com.acme/x/jsonschema/1-0-0"}]},"strategy":{"pseudonymize":{"hashFunction":"MD2"}}}`},
		{"both", []Change{pojoC, pojoC, jsonC, jsonC}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := TransformationJSON(tc.changes, MD2)
			if tc.want != "" && string(b) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b, tc.want)
			}
			validate(t, TransformationKey, b)
		})
	}
}

func TestEnrichJSONFields(t *testing.T) {
	h := func(v string) string { return independent("MD5", v, "pepper123") }
	for _, tc := range []struct {
		name        string
		locs        []string
		data        string
		want        string
		wantDerived string
	}{
		{
			name: "only strings are hashed",
			locs: []string{jsonLoc("contexts", "iglu:com.acme/x/jsonschema/1-*-*", "$.*")},
			data: `{"s":"a","n":12.50,"b":true,"z":null,"o":{"s":"b"},"arr":["c",1,null,["d"],{"s":"e"}],"empty":""}`,
			want: `{"s":"` + h("a") + `","n":12.50,"b":true,"z":null,"o":{"s":"b"},"arr":["` + h("c") + `",1,null,["d"],{"s":"e"}],"empty":"` + h("") + `"}`,
		},
		{
			name: "escapes decoded before hashing, rest untouched",
			locs: []string{jsonLoc("contexts", "iglu:com.acme/x/jsonschema/1-0-0", "$.['e', 'missing']")},
			data: `{"e":"caf\u00e9 \"x\"","keep":"\u00e9"}`,
			want: `{"e":"` + h(`café "x"`) + `","keep":"\u00e9"}`,
		},
		{
			name: "two locators hash twice",
			locs: []string{jsonLoc("contexts", "iglu:com.acme/x/jsonschema/1-0-0", "$.e"), jsonLoc("contexts", "iglu:com.acme/x/jsonschema/1-*-*", "$..e")},
			data: `{"e":"v"}`,
			want: `{"e":"` + h(h("v")) + `"}`,
		},
		{
			name: "criterion does not match",
			locs: []string{jsonLoc("contexts", "iglu:com.acme/x/jsonschema/2-*-*", "$.e")},
			data: `{"e":"v"}`,
			want: `{"e":"v"}`,
		},
		{
			name: "other entity kind",
			locs: []string{jsonLoc("unstruct_event", "iglu:com.acme/x/jsonschema/1-*-*", "$.e")},
			data: `{"e":"v"}`,
			want: `{"e":"v"}`,
		},
		{
			name:        "derived contexts",
			locs:        []string{jsonLoc("derived_contexts", "iglu:com.acme/x/jsonschema/1-*-*", "$.list[*].id")},
			data:        `{"list":[{"id":"p"},{"id":"q"}]}`,
			want:        `{"list":[{"id":"p"},{"id":"q"}]}`,
			wantDerived: `{"list":[{"id":"` + h("p") + `"},{"id":"` + h("q") + `"}]}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStep(t, cfgJSON(false, "", "MD5", tc.locs...))
			e := &enrich.Event{}
			e.Contexts = []iglu.SelfDescribing{sdj("iglu:com.acme/x/jsonschema/1-0-0", tc.data)}
			e.Derived = []iglu.SelfDescribing{sdj("iglu:com.acme/x/jsonschema/1-0-0", tc.data)}
			if err := s.Enrich(context.Background(), e); err != nil {
				t.Fatal(err)
			}
			if got := string(e.Contexts[0].Data); got != tc.want {
				t.Errorf("context\n got %s\nwant %s", got, tc.want)
			}
			wantD := tc.wantDerived
			if wantD == "" {
				wantD = tc.data
			}
			if got := string(e.Derived[0].Data); got != wantD {
				t.Errorf("derived\n got %s\nwant %s", got, wantD)
			}
			if len(e.Emitted()) > 0 {
				t.Error("emitted an event without emitEvent")
			}
		})
	}
}

func TestEveryPojoField(t *testing.T) {
	for _, f := range PojoFields {
		t.Run(f, func(t *testing.T) {
			col, ok := ev.Index(f)
			if !ok {
				t.Fatalf("no column %s", f)
			}
			s := newStep(t, cfgJSON(false, "", "SHA-384", pojo(f)))
			e := &enrich.Event{}
			e.F[col] = "value of " + f
			s.Enrich(context.Background(), e)
			if want := independent("SHA-384", "value of "+f, "pepper123"); e.F[col] != want {
				t.Errorf("%s = %q, want %q", f, e.F[col], want)
			}
			for i := range e.F {
				if i != col && e.F[i] != "" {
					t.Errorf("%s changed", ev.Fields[i].Name)
				}
			}
		})
	}
}

// TestPojoFieldsMatchSchema checks PojoFields against the enum of the
// configuration schema.
func TestPojoFieldsMatchSchema(t *testing.T) {
	schema, err := builtinResolver.Lookup(context.Background(), key201)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Properties struct {
			Parameters struct {
				Properties struct {
					PII struct {
						Items struct {
							Properties struct {
								Pojo struct {
									Properties struct {
										Field struct {
											Enum []string `json:"enum"`
										} `json:"field"`
									} `json:"properties"`
								} `json:"pojo"`
							} `json:"properties"`
						} `json:"items"`
					} `json:"pii"`
				} `json:"properties"`
			} `json:"parameters"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(schema.Raw, &doc); err != nil {
		t.Fatal(err)
	}
	enum := doc.Properties.Parameters.Properties.PII.Items.Properties.Pojo.Properties.Field.Enum
	if fmt.Sprint(enum) != fmt.Sprint(PojoFields) || len(enum) != 18 {
		t.Errorf("schema enum %v\nPojoFields %v", enum, PojoFields)
	}
}

func TestAnonymousOnly(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers []string
		hashed  bool
	}{
		{"no header", []string{"Host: x"}, false},
		{"SP-Anonymous", []string{"Host: x", "SP-Anonymous: *"}, true},
		{"lower case", []string{"sp-anonymous: *"}, true},
		{"name starting with it", []string{"Sp-Anonymous-Extra: 1"}, true},
		{"not at the start", []string{"X-SP-Anonymous: *"}, false},
		{"in a value", []string{"Via: SP-Anonymous"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStep(t, cfgJSON(true, `,"anonymousOnly":true`, "SHA-1", pojo("user_id")))
			e := &enrich.Event{Raw: &enrich.RawEvent{Payload: &payload.CollectorPayload{Headers: tc.headers}}}
			e.F[ev.UserID] = "u1"
			s.Enrich(context.Background(), e)
			if hashed := e.F[ev.UserID] != "u1"; hashed != tc.hashed {
				t.Errorf("hashed = %v, want %v", hashed, tc.hashed)
			}
			if tc.hashed && e.F[ev.UserID] != independent("SHA-1", "u1", "pepper123") {
				t.Errorf("user_id = %s", e.F[ev.UserID])
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	key100 := key201
	key100.Version = iglu.SchemaVer{Model: 1}
	key300 := key201
	key300.Version = iglu.SchemaVer{Model: 3}
	v100 := `{"vendor":"com.snowplowanalytics.snowplow.enrichments","name":"pii_enrichment_config","enabled":true,"parameters":{"pii":[{"pojo":{"field":"user_id"}}],"strategy":{"pseudonymize":{"hashFunction":"SHA-256"}}}}`
	for _, tc := range []struct {
		name string
		key  iglu.SchemaKey
		data string
		msg  string
	}{
		{"1-0-0", key100, v100, "pii_enrichment_config 1-0-0 is not supported: it has no salt"},
		{"3-0-0", key300, cfgJSON(false, "", "MD5"), "3-0-0 is not supported"},
		{"filter path", key201, cfgJSON(false, "", "MD5", jsonLoc("contexts", "iglu:a/b/jsonschema/1-*-*", "$.a[?(@.b)]")), "parameters.pii[0].json.jsonPath"},
		{"bad criterion", key201, cfgJSON(false, "", "MD5", pojo("user_id"), jsonLoc("contexts", "iglu:a/b/jsonschema/x-*-*", "$.a")), "parameters.pii[1].json.schemaCriterion"},
		{"bad field", key201, cfgJSON(false, "", "MD5", pojo("page_url")), `pojo.field "page_url"`},
		{"bad json field", key201, cfgJSON(false, "", "MD5", jsonLoc("payload", "iglu:a/b/jsonschema/1-*-*", "$.a")), `json.field "payload"`},
		{"bad hash", key201, cfgJSON(false, "", "SHA-3"), `hashFunction "SHA-3"`},
		{"no salt", key201, strings.Replace(cfgJSON(false, "", "MD5"), `,"salt":"pepper123"`, "", 1), "needs hashFunction and salt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(context.Background(), enrich.StepConfig{Key: tc.key, Data: json.RawMessage(tc.data)})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.msg)
			}
		})
	}
}

// TestNoAllocationsWhenNothingToDo: a step that finds nothing to hash
// costs no allocation.
func TestNoAllocationsWhenNothingToDo(t *testing.T) {
	s := newStep(t, cfgJSON(true, "", "SHA-256", pojo("user_id"),
		jsonLoc("contexts", "iglu:com.acme/other/jsonschema/1-*-*", "$.e"),
		jsonLoc("unstruct_event", "iglu:com.acme/other/jsonschema/1-*-*", "$.e")))
	e := &enrich.Event{}
	e.Contexts = []iglu.SelfDescribing{sdj("iglu:com.acme/x/jsonschema/1-0-0", `{"e":"v"}`), sdj("iglu:com.acme/y/jsonschema/1-0-0", `{"e":"v"}`)}
	e.Unstruct = &iglu.SelfDescribing{}
	*e.Unstruct = sdj("iglu:com.acme/x/jsonschema/1-0-0", `{"e":"v"}`)
	if n := testing.AllocsPerRun(100, func() { s.Enrich(context.Background(), e) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
	// Matching schema, path not there.
	s = newStep(t, cfgJSON(true, "", "SHA-256", jsonLoc("contexts", "iglu:com.acme/x/jsonschema/1-*-*", "$.a.b[*].c")))
	if n := testing.AllocsPerRun(100, func() { s.Enrich(context.Background(), e) }); n != 0 {
		t.Errorf("%v allocations when the path is not in the entity", n)
	}
}
