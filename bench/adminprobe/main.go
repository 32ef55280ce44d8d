// Command adminprobe measures the admin API's latency as a monitoring
// client sees it: every -every it GETs each -path in turn from -base with
// an Authorization: Bearer token, and at the end prints one line per path
// with the count, errors, p50, p99 and max latency in milliseconds.
//
// It keeps its connection alive (one TLS handshake, made by a warm-up
// request that is not counted) unless -new-conn is set, in which case
// every request makes a new connection and a new handshake.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	base := flag.String("base", "https://127.0.0.1:9097", "admin API base URL")
	paths := flag.String("paths", "/v1/health,/v1/stats?window=1h", "comma-separated paths to GET each tick")
	every := flag.Duration("every", 100*time.Millisecond, "interval between ticks")
	dur := flag.Duration("duration", 15*time.Second, "how long to probe")
	tokenFile := flag.String("token-file", "", "file holding the bearer token")
	caFile := flag.String("cacert", "", "PEM file of the certificate to trust")
	newConn := flag.Bool("new-conn", false, "a new connection (and TLS handshake) per request")
	label := flag.String("label", "", "prefix of each output line")
	flag.Parse()

	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		log.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	tc := &tls.Config{}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			log.Fatal(err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			log.Fatalf("%s: no certificate", *caFile)
		}
	}
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: *newConn, ForceAttemptHTTP2: true}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ps := strings.Split(*paths, ",")

	proto := "?"
	get := func(p string) (time.Duration, error) {
		req, _ := http.NewRequest(http.MethodGet, *base+p, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return time.Since(start), err
		}
		proto = resp.Proto
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", p, resp.Status)
		}
		return d, err
	}

	// Warm-up: the first request makes the connection.
	warm, err := get(ps[0])
	if err != nil {
		log.Printf("warm-up: %v", err)
	}

	lat := make([][]time.Duration, len(ps))
	errs := make([]int, len(ps))
	firstErr := make([]string, len(ps))
	t := time.NewTicker(*every)
	defer t.Stop()
	end := time.Now().Add(*dur)
	for now := range t.C {
		if now.After(end) {
			break
		}
		for i, p := range ps {
			d, err := get(p)
			lat[i] = append(lat[i], d)
			if err != nil {
				if errs[i] == 0 {
					firstErr[i] = err.Error()
				}
				errs[i]++
			}
		}
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }
	fmt.Printf("%swarmup path=%s ms=%s proto=%s\n", *label, ps[0], ms(warm), proto)
	for i, p := range ps {
		l := slices.Clone(lat[i])
		slices.Sort(l)
		if len(l) == 0 {
			fmt.Printf("%spath=%s n=0\n", *label, p)
			continue
		}
		q := func(f float64) time.Duration { return l[min(len(l)-1, int(f*float64(len(l)-1)+0.5))] }
		fmt.Printf("%spath=%s n=%d errors=%d p50=%s p99=%s max=%s", *label, p, len(l), errs[i], ms(q(0.50)), ms(q(0.99)), ms(l[len(l)-1]))
		if errs[i] > 0 {
			fmt.Printf(" first_error=%q", firstErr[i])
		}
		fmt.Println()
	}
}
