// Command barepixel is the baseline for furrow's load test: a bare
// net/http server that answers every GET with the tracking pixel and every
// POST with "ok", storing nothing.
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
	flag.Parse()
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Type", "image/gif")
		w.Write(pixel)
	})))
}
