package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// ServerOptions are the limits of the HTTP server that carries the
// collector.
type ServerOptions struct {
	ReadTimeout  time.Duration // whole request, body included
	WriteTimeout time.Duration // whole response
	IdleTimeout  time.Duration // between requests on a kept-alive connection
	// MaxHeaderBytes bounds the request line and headers together; it is
	// also the size of each connection's read buffer.
	MaxHeaderBytes int
}

// DefaultServerOptions are furrow's defaults.
func DefaultServerOptions() ServerOptions {
	return ServerOptions{ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
}

// NewServer returns the HTTP/1.1 server for the collector's port, with h
// answering every request (h usually routes to Collector.Handle). It
// runs on fasthttp rather than net/http: per request it allocates less
// and does less work, and under the load test that leaves more of the
// machine to enrichment and loading.
//
// Bodies over the collector's DropPayloadSize are answered 413 and then
// read and discarded, so that the client reads the answer. A request
// line and headers over MaxHeaderBytes get 431, other malformed requests
// 400, and the connection is then closed without a reset (see refuse);
// both are logged at debug level.
func (c *Collector) NewServer(h fasthttp.RequestHandler, o ServerOptions) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                      h,
		ReadTimeout:                  o.ReadTimeout,
		WriteTimeout:                 o.WriteTimeout,
		IdleTimeout:                  o.IdleTimeout,
		ReadBufferSize:               o.MaxHeaderBytes,
		MaxRequestBodySize:           c.cfg.DropPayloadSize,
		StreamRequestBody:            true, // see Collector.readBody
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		ReduceMemoryUsage:            true, // idle connections return their buffers; see also refuse
		Logger:                       fastLogger{c.log},
		// Oversized bodies never come here: with StreamRequestBody the
		// server hands them to the handler, which answers 413.
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			code, body := fasthttp.StatusBadRequest, "Bad Request"
			var small *fasthttp.ErrSmallBuffer
			var netErr net.Error
			switch {
			case errors.As(err, &small):
				code, body = fasthttp.StatusRequestHeaderFieldsTooLarge, "Request Header Fields Too Large"
			case errors.As(err, &netErr) && netErr.Timeout():
				code, body = fasthttp.StatusRequestTimeout, "Request Timeout"
			}
			c.log.Debug("collector: request refused", "code", code, "err", err)
			c.count(code)
			text(ctx, code, body)
			if code != fasthttp.StatusRequestTimeout {
				// A client that timed out is not sending: nothing to wait for.
				refuse(ctx, o.WriteTimeout)
			}
		},
	}
}

// refuseLinger bounds how long refuse waits for a refused client to
// finish sending; maxDrain bounds how much it reads meanwhile.
const refuseLinger = 5 * time.Second

// halfCloser is a connection that can shut its sending side alone, as TCP
// and Unix connections can.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// refuse sends ctx's response on a connection whose request could not be
// read whole, then closes the connection itself, so that the client reads
// the answer rather than a reset.
//
// The rest of such a request (headers beyond the limit, a body) is still
// unread. A TCP socket closed with unread data sends a reset instead of
// the usual end of stream, and a client that is still sending, or has not
// yet read the answer, then sees "connection reset" or "broken pipe" and
// never the 431. So refuse writes the response (with Connection: close),
// shuts the sending side (the client sees the end of the answer), reads
// and discards what the client still sends until it closes its side, for
// at most refuseLinger and maxDrain bytes or until the server shuts down,
// and closes. fasthttp's own write of the response afterwards fails on
// the closed connection, which it ignores.
//
// Writing on the connection directly keeps the order of the answers
// because the server flushes every response before it reads the next
// request (ReduceMemoryUsage), so fasthttp's write buffer is empty here.
// A connection that cannot half-close (fasthttputil's in-memory one) is
// left to fasthttp, which writes the response and closes.
func refuse(ctx *fasthttp.RequestCtx, writeTimeout time.Duration) {
	conn, ok := ctx.Conn().(halfCloser)
	if !ok {
		return
	}
	defer conn.Close()
	ctx.Response.SetConnectionClose()
	if writeTimeout > 0 {
		conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	if _, err := ctx.Response.WriteTo(conn); err != nil {
		return
	}
	if conn.CloseWrite() != nil {
		return
	}
	// The linger deadline first: a shutdown's deadline (below) must not
	// be overwritten by it.
	conn.SetReadDeadline(time.Now().Add(refuseLinger))
	finished := make(chan struct{})
	defer close(finished)
	if stop := ctx.Done(); stop != nil {
		go func() {
			select {
			case <-stop:
				conn.SetReadDeadline(time.Now())
			case <-finished:
			}
		}()
	}
	io.CopyN(io.Discard, conn, maxDrain)
}

// fastLogger sends fasthttp's own messages to slog at debug level: they
// are about single connections (timeouts, resets), not the service. They
// are formatted only if debug messages are logged.
type fastLogger struct{ log *slog.Logger }

// bodyWarning starts the warning fasthttp logs whenever a handler takes a
// streamed request body whole. readBody does that only for bodies the
// server has already read in full, which is every POST: not worth a line.
const bodyWarning = "WARNING: Request.Body() reads the entire stream"

func (l fastLogger) Printf(format string, args ...any) {
	if !l.log.Enabled(context.Background(), slog.LevelDebug) || strings.HasPrefix(format, bodyWarning) {
		return
	}
	l.log.Debug("collector: http: " + fmt.Sprintf(format, args...))
}
