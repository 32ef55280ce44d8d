package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
)

const (
	// maxDocumentBytes bounds discovery documents and JWKS.
	maxDocumentBytes = 1 << 20
	// minRSABits is the smallest RSA modulus accepted from a JWKS.
	minRSABits = 2048
)

// jwk is a usable signing key from a JWKS.
type jwk struct {
	kid string
	alg string // the JWK's alg, "" when it has none
	pub crypto.PublicKey
}

// keySet is the cached JWKS. Keys are fetched on first use, when a token
// names an unknown kid, and once they are older than maxAge, but never
// more often than once per refetchInterval, success or failure, so that a
// burst of forged kids cannot hammer the issuer.
type keySet struct {
	ctx       context.Context // bounds fetches
	client    *http.Client
	log       *slog.Logger
	issuer    string
	fixedJWKS bool // jwksURL is configured, not discovered

	refetchInterval time.Duration
	maxAge          time.Duration

	// sem serialises fetches; waiting for it honours the request context.
	sem chan struct{}

	mu          sync.Mutex
	jwksURL     string // configured or discovered; "" until discovered
	keys        []*jwk
	loaded      bool      // keys come from a successful fetch
	loadedAt    time.Time // of the keys
	lastAttempt time.Time // of the last fetch, successful or not
	generation  uint64    // counts fetch attempts
	fetches     int       // fetch attempts, for tests
}

// lookup returns the keys that may verify a token signed with alg and
// naming kid ("" for none), fetching the JWKS when needed.
func (s *keySet) lookup(ctx context.Context, kid, algName string, alg algorithm) ([]*jwk, error) {
	keys, loaded, stale, gen := s.snapshot()
	if loaded && !stale {
		if c, err := match(keys, kid, algName, alg); c != nil || err != nil {
			return c, err
		}
	}
	if err := s.refresh(ctx, gen); err != nil {
		return nil, err
	}
	keys, loaded, _, _ = s.snapshot()
	if !loaded {
		return nil, fail(ReasonJWKSUnavailable, "no keys fetched yet")
	}
	c, err := match(keys, kid, algName, alg)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fail(ReasonUnknownKey, "no %s key with kid %q", algName, clip(kid))
	}
	return c, nil
}

func (s *keySet) snapshot() (keys []*jwk, loaded, stale bool, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys, s.loaded, s.loaded && time.Since(s.loadedAt) > s.maxAge, s.generation
}

// match returns the keys that fit: those with the token's kid, or all of
// the algorithm's type when the token names none. A kid whose key is of
// another type than alg is an algorithm error, not an unknown key.
func match(keys []*jwk, kid, algName string, alg algorithm) ([]*jwk, error) {
	var out []*jwk
	seen := false
	for _, k := range keys {
		if kid != "" && k.kid != kid {
			continue
		}
		seen = true
		if alg.fits(algName, k) {
			out = append(out, k)
		}
	}
	if kid != "" && seen && out == nil {
		return nil, fail(ReasonAlg, "key %q does not fit alg %s", clip(kid), algName)
	}
	return out, nil
}

// refresh fetches the JWKS unless a fetch has completed since generation
// gen was observed or the last attempt is within refetchInterval. A failed
// fetch is logged and reported as jwks_unavailable only when no keys are
// cached; stale keys are better than none.
func (s *keySet) refresh(ctx context.Context, gen uint64) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return fail(ReasonJWKSUnavailable, "waiting for key fetch: %v", ctx.Err())
	}
	defer func() { <-s.sem }()

	s.mu.Lock()
	if s.generation != gen {
		// Another request fetched while this one waited.
		s.mu.Unlock()
		return nil
	}
	if !s.lastAttempt.IsZero() && time.Since(s.lastAttempt) < s.refetchInterval {
		loaded := s.loaded
		s.mu.Unlock()
		if !loaded {
			return fail(ReasonJWKSUnavailable, "last key fetch failed; retrying after %s", s.refetchInterval)
		}
		return nil
	}
	s.lastAttempt = time.Now()
	s.fetches++
	jwksURL := s.jwksURL
	s.mu.Unlock()

	keys, jwksURL, err := s.fetch(jwksURL)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.generation++
	if err != nil {
		if !s.fixedJWKS {
			s.jwksURL = "" // rediscover next time
		}
		s.log.Warn("admin auth: fetching signing keys failed", "error", err)
		if !s.loaded {
			return fail(ReasonJWKSUnavailable, "%v", err)
		}
		return nil
	}
	s.jwksURL = jwksURL
	s.keys, s.loaded, s.loadedAt = keys, true, time.Now()
	s.log.Debug("admin auth: signing keys fetched", "jwks_url", jwksURL, "keys", len(keys))
	return nil
}

// fetch discovers the JWKS URL when jwksURL is "" and fetches the keys.
func (s *keySet) fetch(jwksURL string) ([]*jwk, string, error) {
	ctx, cancel := context.WithTimeout(s.ctx, defaultHTTPTimeout)
	defer cancel()
	if jwksURL == "" {
		u, err := s.discover(ctx)
		if err != nil {
			return nil, "", err
		}
		jwksURL = u
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := s.getJSON(ctx, jwksURL, &doc); err != nil {
		return nil, "", err
	}
	var keys []*jwk
	for i, raw := range doc.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			s.log.Debug("admin auth: JWKS key ignored", "index", i, "reason", err)
			continue
		}
		if k != nil {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, "", fmt.Errorf("%s: no usable signing key among %d", jwksURL, len(doc.Keys))
	}
	return keys, jwksURL, nil
}

// discover reads the issuer's OpenID configuration for its jwks_uri.
func (s *keySet) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(s.issuer, "/") + "/.well-known/openid-configuration"
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := s.getJSON(ctx, u, &doc); err != nil {
		return "", err
	}
	if strings.TrimSuffix(doc.Issuer, "/") != strings.TrimSuffix(s.issuer, "/") {
		return "", fmt.Errorf("%s: issuer %q is not the configured %q", u, clip(doc.Issuer), s.issuer)
	}
	if err := checkURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("%s: jwks_uri: %w", u, err)
	}
	return doc.JWKSURI, nil
}

func (s *keySet) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocumentBytes))
		return fmt.Errorf("%s: HTTP status %s", u, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			return fmt.Errorf("%s: content type %q is not JSON", u, clip(ct))
		}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	if len(body) > maxDocumentBytes {
		return fmt.Errorf("%s: document exceeds %d bytes", u, maxDocumentBytes)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}

// parseJWK parses one JWKS member. It returns nil, nil for keys that are
// not for signatures (use "enc") or of types never accepted (symmetric
// "oct", OKP), and an error for malformed RSA or EC keys.
func parseJWK(raw json.RawMessage) (*jwk, error) {
	var j struct {
		Kty string `json:"kty"`
		Kid string `json:"kid"`
		Use string `json:"use"`
		Alg string `json:"alg"`
		N   string `json:"n"`
		E   string `json:"e"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Y   string `json:"y"`
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, err
	}
	if j.Use != "" && j.Use != "sig" {
		return nil, nil
	}
	k := &jwk{kid: j.Kid, alg: j.Alg}
	switch j.Kty {
	case "RSA":
		pub, err := parseRSA(j.N, j.E)
		if err != nil {
			return nil, fmt.Errorf("RSA key %q: %w", clip(j.Kid), err)
		}
		k.pub = pub
	case "EC":
		pub, err := parseEC(j.Crv, j.X, j.Y)
		if err != nil {
			return nil, fmt.Errorf("EC key %q: %w", clip(j.Kid), err)
		}
		k.pub = pub
	default:
		return nil, nil
	}
	if k.alg != "" {
		a, ok := algorithms[k.alg]
		if !ok || !a.fits(k.alg, k) {
			return nil, fmt.Errorf("key %q: alg %q not accepted for its type", clip(j.Kid), clip(k.alg))
		}
	}
	return k, nil
}

func parseRSA(n64, e64 string) (*rsa.PublicKey, error) {
	nb, err := b64.DecodeString(n64)
	if err != nil || len(nb) == 0 {
		return nil, errors.New("n is not base64url")
	}
	eb, err := b64.DecodeString(e64)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return nil, errors.New("e is not a base64url exponent")
	}
	n := new(big.Int).SetBytes(nb)
	if n.BitLen() < minRSABits {
		return nil, fmt.Errorf("modulus of %d bits is under %d", n.BitLen(), minRSABits)
	}
	e := int(new(big.Int).SetBytes(eb).Int64())
	if e < 3 || e%2 == 0 {
		return nil, fmt.Errorf("exponent %d is invalid", e)
	}
	return &rsa.PublicKey{N: n, E: e}, nil
}

func parseEC(crv, x64, y64 string) (*ecdsa.PublicKey, error) {
	var curve elliptic.Curve
	switch crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	default:
		return nil, fmt.Errorf("curve %q not accepted", clip(crv))
	}
	size := (curve.Params().BitSize + 7) / 8
	x, errX := b64.DecodeString(x64)
	y, errY := b64.DecodeString(y64)
	if errX != nil || errY != nil || len(x) != size || len(y) != size {
		return nil, fmt.Errorf("x and y are not %d-byte base64url coordinates", size)
	}
	point := make([]byte, 0, 1+2*size)
	point = append(point, 4) // uncompressed
	point = append(point, x...)
	point = append(point, y...)
	return ecdsa.ParseUncompressedPublicKey(curve, point)
}
