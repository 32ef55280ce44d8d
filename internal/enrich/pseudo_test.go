package enrich

import (
	"github.com/furrow-io/furrow/internal/pseudo"
)

// testKey is a 32-byte pseudonymization key for tests.
var testKey = []byte("furrow-test-key-0123456789abcdef")

// testPolicy is the default policy under testKey, changed by mod.
func testPolicy(mod func(*pseudo.Config)) *pseudo.Policy {
	c := pseudo.Default()
	c.Enabled = true
	c.KeyEnv = "UNUSED"
	if mod != nil {
		mod(&c)
	}
	if err := c.Validate(); err != nil {
		panic(err)
	}
	p := pseudo.New(c, testKey)
	p.SetParams(ParamField)
	return p
}
