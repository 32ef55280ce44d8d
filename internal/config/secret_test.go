package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// A secret in a struct, as a configuration section will hold one.
type withSecret struct {
	User     string `yaml:"user" json:"user"`
	Password Secret `yaml:"password" json:"password"`
}

func TestSecretRedacts(t *testing.T) {
	const clear = "hunter2"
	for _, tt := range []struct {
		name string
		s    Secret
		want string // what every printer shows
	}{
		{"set", Secret(clear), Redacted},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.s
			if s.Value() != string(s) {
				t.Errorf("Value %q", s.Value())
			}
			w := withSecret{User: "u", Password: s}
			// What each printer shows; none may show the clear text.
			got := map[string]string{}
			check := func(printer, out, want string) {
				t.Helper()
				got[printer] = out
				if out != want || (clear != "" && strings.Contains(out, clear)) {
					t.Errorf("%s: %q, want %q", printer, out, want)
				}
			}
			check("String", s.String(), tt.want)
			check("%v", fmt.Sprintf("%v", s), tt.want)
			check("%s", fmt.Sprintf("%s", s), tt.want)
			check("%q", fmt.Sprintf("%q", s), fmt.Sprintf("%q", tt.want))
			check("%#v", fmt.Sprintf("%#v", s), fmt.Sprintf("%q", tt.want))
			check("%x", fmt.Sprintf("%x", s), fmt.Sprintf("%x", tt.want))
			check("%12s", fmt.Sprintf("%12s", s), fmt.Sprintf("%12s", tt.want))
			check("Sprint", fmt.Sprint(s), tt.want)
			check("%+v of a struct", fmt.Sprintf("%+v", w), "{User:u Password:"+tt.want+"}")
			check("%v of a pointer to a struct", fmt.Sprintf("%v", &w), "&{u "+tt.want+"}")

			y, err := yaml.Marshal(w)
			if err != nil {
				t.Fatal(err)
			}
			ywant := "user: u\npassword: \"\"\n"
			if tt.want != "" {
				ywant = "user: u\npassword: '" + tt.want + "'\n"
			}
			check("yaml", string(y), ywant)

			j, err := json.Marshal(w)
			if err != nil {
				t.Fatal(err)
			}
			check("json", string(j), `{"user":"u","password":"`+tt.want+`"}`)
			tx, _ := s.MarshalText()
			check("text", string(tx), tt.want)

			var buf bytes.Buffer
			slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "password", s, "config", w)
			line := buf.String()
			line = line[strings.Index(line, "password="):]
			check("slog text", line, fmt.Sprintf("password=%s config=\"{User:u Password:%s}\"\n", quoteIfNeeded(tt.want), tt.want))
			buf.Reset()
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "password", s, "config", w)
			line = buf.String()
			line = line[strings.Index(line, `"password"`):]
			check("slog json", line, `"password":"`+tt.want+`","config":{"user":"u","password":"`+tt.want+`"}}`+"\n")
		})
	}
}

// quoteIfNeeded is how slog's text handler writes a string value.
func quoteIfNeeded(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

func TestSecretYAML(t *testing.T) {
	var w withSecret
	if err := yaml.Unmarshal([]byte("password: s3cr3t\n"), &w); err != nil || w.Password.Value() != "s3cr3t" {
		t.Errorf("decoded %q, %v", w.Password.Value(), err)
	}
	// What `furrow config` printed in place of a secret is not a secret.
	err := yaml.Unmarshal([]byte("password: '[redacted]'\n"), &w)
	if err == nil || !strings.Contains(err.Error(), "line 1: [redacted] is what furrow prints in place of a secret") {
		t.Errorf("the placeholder: %v", err)
	}
	// From the environment, through Load's expansion.
	var c struct {
		DSN Secret `yaml:"dsn"`
	}
	x := &expander{file: "f", lookup: env(map[string]string{"DSN": "postgres://u:pw@h/db"})}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("dsn: ${DSN}\n"), &n); err != nil {
		t.Fatal(err)
	}
	x.node(&n, "")
	if err := n.Decode(&c); err != nil || c.DSN.Value() != "postgres://u:pw@h/db" || fmt.Sprint(c) != "{[redacted]}" {
		t.Errorf("from the environment: %q, %v", c.DSN.Value(), err)
	}
}
