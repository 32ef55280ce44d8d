// Command barepixel is the baseline for furrow's load test: a bare
// net/http server that answers every GET with the tracking pixel and every
// POST with "ok", storing nothing.
//
// With -cert and -key it serves HTTPS instead (net/http's defaults, so it
// offers h2 as well as HTTP/1.1 over ALPN; wrk speaks HTTP/1.1 only).
package main

import (
	"encoding/base64"
	"flag"
	"io"
	"log"
	"net/http"
)

var pixel, _ = base64.StdEncoding.DecodeString("R0lGODlhAQABAPAAAP///wAAACH5BAUAAAAALAAAAAABAAEAAAICRAEAOw==")

func main() {
	addr := flag.String("listen", "127.0.0.1:9099", "address")
	cert := flag.String("cert", "", "PEM certificate file: serve HTTPS (with -key)")
	key := flag.String("key", "", "PEM private key file (with -cert)")
	flag.Parse()
	if (*cert == "") != (*key == "") {
		log.Fatal("-cert and -key go together")
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Type", "image/gif")
		w.Write(pixel)
	})
	if *cert != "" {
		log.Fatal(http.ListenAndServeTLS(*addr, *cert, *key, h))
	}
	log.Fatal(http.ListenAndServe(*addr, h))
}
