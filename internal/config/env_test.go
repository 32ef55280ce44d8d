package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env is a fixed environment for the tests: os.LookupEnv's shape.
func env(vars map[string]string) lookupFunc {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

var testEnv = env(map[string]string{
	"HOST": "db.internal", "PORT": "5432", "EMPTY": "", "DOLLAR": "$", "REF": "${HOST}",
})

func TestExpandString(t *testing.T) {
	tests := []struct {
		name, in, want string
		missing        []string
		err            string // part of the error; "" for none
	}{
		{"no reference", "plain text", "plain text", nil, ""},
		{"set", "${HOST}", "db.internal", nil, ""},
		{"set, inside text", "postgres://${HOST}:${PORT}/x", "postgres://db.internal:5432/x", nil, ""},
		{"set but empty", "a${EMPTY}b", "ab", nil, ""},
		{"unset", "x${NOPE}y", "xy", []string{"NOPE"}, ""},
		{"unset with a default", "${NOPE:-localhost}", "localhost", nil, ""},
		{"empty with a default", "${EMPTY:-fallback}", "fallback", nil, ""},
		{"set with a default", "${HOST:-localhost}", "db.internal", nil, ""},
		{"empty default", "${NOPE:-}", "", nil, ""},
		{"default holding :- and $", "${NOPE:-a:-b$c}", "a:-b$c", nil, ""},
		{"several missing", "${A}/${B}/${A}", "//", []string{"A", "B", "A"}, ""},
		{"$$ is a literal $", "cost: $$5, $${HOST}", "cost: $5, ${HOST}", nil, ""},
		{"lone $ kept", "$5 ^a$ $HOST $", "$5 ^a$ $HOST $", nil, ""},
		{"value is not expanded again", "${REF}", "${HOST}", nil, ""},
		{"value with a $", "${DOLLAR}{HOST}", "${HOST}", nil, ""},
		{"unclosed", "a ${HOST", "", nil, "without its closing }"},
		{"empty name", "${}", "", nil, "is not ${NAME}"},
		{"name with a space", "${DB PASS}", "", nil, "is not ${NAME}"},
		{"name starting with a digit", "${1X}", "", nil, "is not ${NAME}"},
		{"shell's ${X-y}", "${X-y}", "", nil, "${NAME:-default}"},
		{"shell's ${X:?}", "${X:?}", "", nil, "is not ${NAME}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, missing, err := expandString(tt.in, testEnv)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want || !reflect.DeepEqual(missing, tt.missing) {
				t.Errorf("got %q, missing %v, %v; want %q, missing %v", got, missing, err, tt.want, tt.missing)
			}
		})
	}
}

func FuzzExpandString(f *testing.F) {
	for _, s := range []string{"", "${HOST}", "$$", "${A:-b}", "${", "a$", "$${X}", "${REF}x${NOPE}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, missing, err := expandString(s, testEnv)
		if err != nil {
			return
		}
		if !strings.Contains(s, "$") && (got != s || missing != nil) {
			t.Errorf("%q without a $ expands to %q, %v", s, got, missing)
		}
		if !strings.Contains(s, "${") && !strings.Contains(s, "$$") && got != s {
			t.Errorf("%q without a reference expands to %q", s, got)
		}
	})
}

// A file's references are replaced in its values, after parsing.
func TestLoadExpandsEnvironment(t *testing.T) {
	c, err := load(write(t, `
# A comment may mention ${UNSET}: comments are not expanded.
listen: ${HOST}:${PORT}
data_dir: ${DATA_DIR:-/var/lib/furrow}
drain_timeout: ${DRAIN:-45s}
enrich:
  workers: ${WORKERS}         # plain: resolved as a number
  iglu_dirs: ["${HOME}/schemas", '$${literal}']
duckdb:
  enabled: ${DUCK}            # plain: a boolean
  schema: "${PORT}"           # quoted: a string
  threads: ${EMPTY}           # empty: null, the default stays
collector:
  paths:
    ${KEY}: /com.snowplowanalytics.snowplow/tp2
  root_response:
    body: |
      Hello ${WHO}
`), env(map[string]string{"HOST": "127.0.0.2", "PORT": "8080", "WORKERS": "3", "HOME": "/home/f", "DUCK": "false", "EMPTY": "", "WHO": "there"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.2:8080" || c.DataDir != "/var/lib/furrow" || c.DrainTimeout != 45*time.Second {
		t.Errorf("listen %q, data_dir %q, drain_timeout %s", c.Listen, c.DataDir, c.DrainTimeout)
	}
	if c.Enrich.Workers != 3 || !reflect.DeepEqual(c.Enrich.IgluDirs, []string{"/home/f/schemas", "${literal}"}) {
		t.Errorf("enrich %+v", c.Enrich)
	}
	if c.DuckDB.Enabled || c.DuckDB.Schema != "8080" || c.DuckDB.Threads != Default().DuckDB.Threads {
		t.Errorf("duckdb %+v", c.DuckDB)
	}
	// Keys are names, not values: not expanded.
	if _, ok := c.Collector.Paths["${KEY}"]; !ok {
		t.Errorf("paths %v", c.Collector.Paths)
	}
	if c.Collector.RootResponse.Body != "Hello there\n" {
		t.Errorf("body %q", c.Collector.RootResponse.Body)
	}
}

// Whatever a variable holds is one value: it cannot add settings, lists
// or aliases, nor end its value early.
func TestLoadEnvironmentCannotInjectYAML(t *testing.T) {
	file := write(t, `
listen: ${LISTEN}
collector:
  cookie:
    name: ${NAME}
    domains: ["${DOMAIN}"]  # in a flow list, quoted: YAML ends a plain value at {
  root_response:
    body: "${BODY}"
enrich:
  iglu_dirs: ${DIRS}
`)
	for _, tt := range []struct {
		name, variable, value string
		check                 func(c Config) bool
		err                   string
	}{
		{"a newline and a new section", "NAME", "sp\nduckdb:\n  enabled: false", func(c Config) bool {
			return c.Collector.Cookie.Name == "sp\nduckdb:\n  enabled: false" && c.DuckDB.Enabled
		}, ""},
		{"a mapping", "NAME", "sp: x", func(c Config) bool { return c.Collector.Cookie.Name == "sp: x" }, ""},
		{"a comment", "NAME", "sp # x", func(c Config) bool { return c.Collector.Cookie.Name == "sp # x" }, ""},
		{"a closing bracket and a new element", "DOMAIN", "a.com], evil.com, [x", func(c Config) bool {
			return reflect.DeepEqual(c.Collector.Cookie.Domains, []string{"a.com], evil.com, [x"})
		}, ""},
		{"a closing quote", "BODY", `x" , "enabled": "true`, func(c Config) bool {
			return c.Collector.RootResponse.Body == `x" , "enabled": "true` && !c.Collector.RootResponse.Enabled
		}, ""},
		{"an alias", "NAME", "*anchor", func(c Config) bool { return c.Collector.Cookie.Name == "*anchor" }, ""},
		{"a tag", "NAME", "!!binary aGk=", func(c Config) bool { return c.Collector.Cookie.Name == "!!binary aGk=" }, ""},
		{"a flow list is still one string", "DIRS", "[a, b]", nil, "enrich.iglu_dirs: cannot unmarshal !!str `[a, b]`"},
		{"a block list is still one string", "DIRS", "\n- a\n- b", nil, "enrich.iglu_dirs: cannot unmarshal"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"LISTEN": "127.0.0.1:1", "NAME": "sp", "DOMAIN": "a.com", "BODY": "hi", "DIRS": ""}
			vars[tt.variable] = tt.value
			c, err := load(file, env(vars))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("%s=%q: %+v", tt.variable, tt.value, c.Collector)
			}
		})
	}
}

// Every unset variable is named in one error, with its lines, and nothing
// is decoded.
func TestLoadMissingVariables(t *testing.T) {
	file := write(t, `listen: ${HOST}:${PORT}
data_dir: ${DATA_DIR:-/tmp/x}
enrich:
  resolver: ${RESOLVER}
  iglu_dirs:
    - ${HOST}
`)
	c, err := load(file, env(map[string]string{"PORT": "1"}))
	var ee *EnvError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v, want an *EnvError", err)
	}
	want := []MissingVar{{"HOST", []int{1, 6}}, {"RESOLVER", []int{4}}}
	if ee.File != file || !reflect.DeepEqual(ee.Missing, want) {
		t.Errorf("EnvError %+v, want %+v", ee, want)
	}
	if msg := err.Error(); msg != file+": environment variables not set: HOST (lines 1, 6), RESOLVER (line 4) (give a default with ${NAME:-default})" {
		t.Errorf("message %q", msg)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("decoded despite the missing variables: %+v", c)
	}

	// Malformed references are reported with them, each with its setting.
	_, err = load(write(t, "listen: ${HOST\nlog_level: ${A B}\ndata_dir: ${NOPE}\n"), env(nil))
	for _, want := range []string{":1: listen: ", ":2: log_level: ", "environment variable not set: NOPE (line 3)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
	if errors.As(err, new(*DecodeError)) {
		t.Errorf("expansion errors are not a *DecodeError (which means the rest was decoded)")
	}
}

// An anchored value is expanded once, where it is defined: $$ stays one $.
func TestLoadExpandsAnchorsOnce(t *testing.T) {
	c, err := load(write(t, "log_level: &lvl debug\nlisten: &l \"$${HOST}:1\"\npprof_listen: *l\n"), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "${HOST}:1" || c.PprofListen != "${HOST}:1" {
		t.Errorf("listen %q, pprof_listen %q", c.Listen, c.PprofListen)
	}
}
