package kafka

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// connState remembers the last failed connection to a broker, until one
// succeeds, so that furrow can say why the brokers do not answer (a name
// that does not resolve, a refused port, a TLS or SASL failure) rather
// than only that they do not.
type connState struct {
	mu   sync.Mutex
	err  error
	addr string
}

var _ kgo.HookBrokerConnect = (*connState)(nil)

// OnBrokerConnect implements kgo.HookBrokerConnect.
func (c *connState) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.err = nil
		return
	}
	c.err, c.addr = err, net.JoinHostPort(meta.Host, fmt.Sprint(meta.Port))
}

// last is the last failed connection's error, nil if one succeeded since.
func (c *connState) last() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// why says what the last failed connection met, "" if none failed since
// one succeeded.
func (c *connState) why() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return ""
	}
	return fmt.Sprintf("; last connection to %s: %v", c.addr, c.err)
}
