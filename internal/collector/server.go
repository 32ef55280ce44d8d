package collector

import (
	"context"
	"errors"
	"fmt"
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
// 400; both are logged at debug level.
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
		ReduceMemoryUsage:            true, // idle connections return their buffers
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
		},
	}
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
