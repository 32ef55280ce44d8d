package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// testIssuer is a local OpenID Connect issuer: it serves a discovery
// document and a JWKS that tests can change, and counts the fetches.
type testIssuer struct {
	srv *httptest.Server

	mu     sync.Mutex
	keys   []map[string]any // the served JWKS members
	status int              // when not 0, every response has this status

	discoveryFetches atomic.Int64
	jwksFetches      atomic.Int64
}

func newTestIssuer(t testing.TB) *testIssuer {
	t.Helper()
	iss := &testIssuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		iss.discoveryFetches.Add(1)
		if iss.failing(w) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":   iss.srv.URL,
			"jwks_uri": iss.srv.URL + "/jwks.json",
		})
	})
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, r *http.Request) {
		iss.jwksFetches.Add(1)
		if iss.failing(w) {
			return
		}
		iss.mu.Lock()
		doc := map[string]any{"keys": iss.keys}
		body, err := json.Marshal(doc)
		iss.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	iss.srv = httptest.NewServer(mux)
	t.Cleanup(iss.srv.Close)
	return iss
}

func (iss *testIssuer) failing(w http.ResponseWriter) bool {
	iss.mu.Lock()
	status := iss.status
	iss.mu.Unlock()
	if status != 0 {
		http.Error(w, "down", status)
		return true
	}
	return false
}

func (iss *testIssuer) setStatus(status int) {
	iss.mu.Lock()
	iss.status = status
	iss.mu.Unlock()
}

// publish adds k's public half to the served JWKS.
func (iss *testIssuer) publish(k *testKey) {
	iss.mu.Lock()
	iss.keys = append(iss.keys, k.jwk())
	iss.mu.Unlock()
}

// publishRaw adds a literal JWKS member.
func (iss *testIssuer) publishRaw(m map[string]any) {
	iss.mu.Lock()
	iss.keys = append(iss.keys, m)
	iss.mu.Unlock()
}

// testKey is a signing key generated in the test.
type testKey struct {
	kid string
	alg string // published as the JWK's alg when not ""
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

var (
	rsaKeyOnce sync.Once
	rsaKeys    []*rsa.PrivateKey
)

// rsaKey returns the i-th of a few RSA keys, generated once per test run
// (generation is the slow part).
func rsaKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	rsaKeyOnce.Do(func() {
		for range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
	})
	return rsaKeys[i]
}

func newRSAKey(t testing.TB, kid string, i int) *testKey {
	return &testKey{kid: kid, rsa: rsaKey(t, i)}
}

func newECKey(t testing.TB, kid, alg string, curve elliptic.Curve) *testKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{kid: kid, alg: alg, ec: k}
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (k *testKey) jwk() map[string]any {
	m := map[string]any{"kid": k.kid, "use": "sig"}
	if k.alg != "" {
		m["alg"] = k.alg
	}
	switch {
	case k.rsa != nil:
		m["kty"] = "RSA"
		m["n"] = b64u(k.rsa.N.Bytes())
		m["e"] = b64u(big.NewInt(int64(k.rsa.E)).Bytes())
	case k.ec != nil:
		size := (k.ec.Curve.Params().BitSize + 7) / 8
		m["kty"] = "EC"
		m["crv"] = k.ec.Curve.Params().Name
		m["x"] = b64u(k.ec.X.FillBytes(make([]byte, size)))
		m["y"] = b64u(k.ec.Y.FillBytes(make([]byte, size)))
	}
	return m
}

// publicPEM is the key's public half as PEM, the secret an algorithm
// confusion attack would use for HMAC.
func (k *testKey) publicPEM(t testing.TB) []byte {
	t.Helper()
	var pub any
	if k.ec != nil {
		pub = &k.ec.PublicKey
	} else {
		pub = &k.rsa.PublicKey
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// encodeParts returns the base64url header and claims joined by a dot.
func encodeParts(t testing.TB, header, claims map[string]any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return b64u(h) + "." + b64u(c)
}

// sign makes a compact JWS of claims with alg and k; header entries are
// added to (or, when nil, removed from) the default header.
func (k *testKey) sign(t testing.TB, alg string, claims map[string]any, header map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": alg, "typ": "JWT", "kid": k.kid}
	for name, v := range header {
		if v == nil {
			delete(h, name)
		} else {
			h[name] = v
		}
	}
	signed := encodeParts(t, h, claims)
	var sig []byte
	var err error
	hashOf := func(hash crypto.Hash) []byte {
		d := hash.New()
		d.Write([]byte(signed))
		return d.Sum(nil)
	}
	switch alg {
	case "RS256", "RS384", "RS512":
		hash := map[string]crypto.Hash{"RS256": crypto.SHA256, "RS384": crypto.SHA384, "RS512": crypto.SHA512}[alg]
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.rsa, hash, hashOf(hash))
	case "PS256":
		sig, err = rsa.SignPSS(rand.Reader, k.rsa, crypto.SHA256, hashOf(crypto.SHA256), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES256", "ES384":
		hash := crypto.SHA256
		if alg == "ES384" {
			hash = crypto.SHA384
		}
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k.ec, hashOf(hash))
		if err == nil {
			size := (k.ec.Curve.Params().BitSize + 7) / 8
			sig = append(r.FillBytes(make([]byte, size)), s.FillBytes(make([]byte, size))...)
		}
	default:
		t.Fatalf("sign: unsupported alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + b64u(sig)
}

// hmacToken is an HS256 token with secret as the HMAC key.
func hmacToken(t testing.TB, secret []byte, kid string, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": "HS256", "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	signed := encodeParts(t, h, claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signed))
	return signed + "." + b64u(mac.Sum(nil))
}
