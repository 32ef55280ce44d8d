package tlsx

import (
	"context"
	"testing"
	"time"

	"github.com/furrow-io/furrow/internal/testutil"
)

// The ACME tests run a real Pebble CA (testutil.Pebble), which
// test/acme/install.sh installs; without it the tests fail rather than skip.

// closedPort returns a port on 127.0.0.1 where nothing listens, so that a
// challenge type sent there fails.
func closedPort(t *testing.T) int { return testutil.FreePort(t) }

func closeProvider(t *testing.T, p *Provider) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}
