package auth

import (
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

// testNow is the fixed clock of the tests.
var testNow = time.Unix(1_800_000_000, 0)

const staticToken = "furrow_c3RhdGljLXRva2VuLWZvci10ZXN0cy1vbmx5LW5vdC1zZWNyZXQ"

// fixture is an issuer with an RSA key, an ES256 key and an ES384 key,
// and an Authenticator trusting it.
type fixture struct {
	iss     *testIssuer
	rsa     *testKey
	ec      *testKey
	ec384   *testKey
	auth    *Authenticator
	reg     *prometheus.Registry
	options Options
}

func newFixture(t testing.TB, edit func(*Options)) *fixture {
	t.Helper()
	f := &fixture{
		iss:   newTestIssuer(t),
		rsa:   newRSAKey(t, "rsa-1", 0),
		ec:    newECKey(t, "ec-1", "ES256", elliptic.P256()),
		ec384: newECKey(t, "ec-384", "", elliptic.P384()),
		reg:   prometheus.NewRegistry(),
	}
	f.iss.publish(f.rsa)
	f.iss.publish(f.ec)
	f.iss.publish(f.ec384)
	f.options = Options{
		Issuer:      f.iss.srv.URL,
		Audience:    []string{"furrow-admin", "app-client-1"},
		TokenUse:    "access",
		Owners:      []string{"alice", "bob-user"},
		TokenHashes: []string{HashToken(staticToken)},
		Now:         func() time.Time { return testNow },
		Registry:    f.reg,
	}
	if edit != nil {
		edit(&f.options)
	}
	a, err := New(t.Context(), f.options)
	if err != nil {
		t.Fatal(err)
	}
	f.auth = a
	return f
}

// claims returns valid claims for the fixture, edited: a nil value
// removes the claim.
func (f *fixture) claims(edit map[string]any) map[string]any {
	c := map[string]any{
		"iss":       f.iss.srv.URL,
		"sub":       "alice",
		"aud":       "furrow-admin",
		"exp":       testNow.Add(time.Hour).Unix(),
		"iat":       testNow.Add(-time.Minute).Unix(),
		"token_use": "access",
	}
	for k, v := range edit {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func request(authorization ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/admin/v1/status", nil)
	for _, v := range authorization {
		r.Header.Add("Authorization", v)
	}
	return r
}

func bearer(token string) string { return "Bearer " + token }

// checkResult asserts the outcome of Check.
func checkResult(t *testing.T, p Principal, err error, wantStatus int, wantReason string) {
	t.Helper()
	if wantStatus == http.StatusOK {
		if err != nil {
			t.Fatalf("Check: %v, want success", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Check = %+v, %v; want *Error %d %s", p, err, wantStatus, wantReason)
	}
	if e.Status != wantStatus || e.Reason != wantReason {
		t.Fatalf("Check error = %d %s (%v), want %d %s", e.Status, e.Reason, e, wantStatus, wantReason)
	}
	if p != (Principal{}) {
		t.Fatalf("Check returned principal %+v with an error", p)
	}
}

func TestCheckTokens(t *testing.T) {
	f := newFixture(t, nil)
	hour := time.Hour
	tests := []struct {
		name        string
		token       func() string
		wantStatus  int
		wantReason  string
		wantSubject string
		wantMethod  string
	}{
		{
			name:        "RS256 valid",
			token:       func() string { return f.rsa.sign(t, "RS256", f.claims(nil), nil) },
			wantStatus:  200,
			wantSubject: "alice",
			wantMethod:  MethodJWT,
		},
		{
			name:        "RS384 valid",
			token:       func() string { return f.rsa.sign(t, "RS384", f.claims(nil), nil) },
			wantStatus:  200,
			wantSubject: "alice",
			wantMethod:  MethodJWT,
		},
		{
			name:        "RS512 valid",
			token:       func() string { return f.rsa.sign(t, "RS512", f.claims(nil), nil) },
			wantStatus:  200,
			wantSubject: "alice",
			wantMethod:  MethodJWT,
		},
		{
			name:        "PS256 valid",
			token:       func() string { return f.rsa.sign(t, "PS256", f.claims(nil), nil) },
			wantStatus:  200,
			wantSubject: "alice",
			wantMethod:  MethodJWT,
		},
		{
			name:        "ES256 valid",
			token:       func() string { return f.ec.sign(t, "ES256", f.claims(nil), nil) },
			wantStatus:  200,
			wantSubject: "alice",
			wantMethod:  MethodJWT,
		},
		{
			name:        "ES384 valid",
			token:       func() string { return f.ec384.sign(t, "ES384", f.claims(nil), nil) },
			wantStatus:  200,
			wantSubject: "alice",
			wantMethod:  MethodJWT,
		},
		{
			name:        "no kid: every key of the type is tried",
			token:       func() string { return f.rsa.sign(t, "RS256", f.claims(nil), map[string]any{"kid": nil}) },
			wantStatus:  200,
			wantSubject: "alice",
			wantMethod:  MethodJWT,
		},
		{
			name: "aud array containing an accepted audience",
			token: func() string {
				return f.rsa.sign(t, "RS256", f.claims(map[string]any{"aud": []string{"other", "furrow-admin"}}), nil)
			},
			wantStatus:  200,
			wantSubject: "alice",
			wantMethod:  MethodJWT,
		},
		{
			name: "Cognito access token: client_id, token_use, username",
			token: func() string {
				return f.rsa.sign(t, "RS256", f.claims(map[string]any{
					"aud": nil, "client_id": "app-client-1", "sub": "9f3c0b5e-uuid", "username": "bob-user",
					"scope": "aws.cognito.signin.user.admin", "auth_time": testNow.Add(-time.Hour).Unix(), "jti": "j1",
				}), nil)
			},
			wantStatus:  200,
			wantSubject: "9f3c0b5e-uuid",
			wantMethod:  MethodJWT,
		},
		{
			name: "expired within leeway",
			token: func() string {
				return f.rsa.sign(t, "RS256", f.claims(map[string]any{"exp": testNow.Add(-10 * time.Second).Unix()}), nil)
			},
			wantStatus:  200,
			wantSubject: "alice",
			wantMethod:  MethodJWT,
		},
		{
			name: "nbf within leeway",
			token: func() string {
				return f.rsa.sign(t, "RS256", f.claims(map[string]any{"nbf": testNow.Add(10 * time.Second).Unix()}), nil)
			},
			wantStatus:  200,
			wantSubject: "alice",
			wantMethod:  MethodJWT,
		},
		{
			name: "fractional dates",
			token: func() string {
				return f.rsa.sign(t, "RS256", f.claims(map[string]any{"exp": float64(testNow.Unix()) + 60.5}), nil)
			},
			wantStatus:  200,
			wantSubject: "alice",
			wantMethod:  MethodJWT,
		},
		{
			name:        "static token",
			token:       func() string { return staticToken },
			wantStatus:  200,
			wantSubject: "token:" + strings.TrimPrefix(HashToken(staticToken), "sha256:")[:12],
			wantMethod:  MethodToken,
		},

		// Algorithm.
		{
			name: "alg none",
			token: func() string {
				return encodeParts(t, map[string]any{"alg": "none", "typ": "JWT"}, f.claims(nil)) + "."
			},
			wantStatus: 401, wantReason: ReasonAlg,
		},
		{
			name: "alg none with a signature",
			token: func() string {
				return encodeParts(t, map[string]any{"alg": "none", "kid": "rsa-1"}, f.claims(nil)) + ".c2ln"
			},
			wantStatus: 401, wantReason: ReasonAlg,
		},
		{
			name:       "HS256 with the RSA public key PEM as secret",
			token:      func() string { return hmacToken(t, f.rsa.publicPEM(t), "rsa-1", f.claims(nil)) },
			wantStatus: 401, wantReason: ReasonAlg,
		},
		{
			name: "HS256 with the RSA JWK as secret, no kid",
			token: func() string {
				j, _ := json.Marshal(f.rsa.jwk())
				return hmacToken(t, j, "", f.claims(nil))
			},
			wantStatus: 401, wantReason: ReasonAlg,
		},
		{
			name:       "HS256 with the EC public key PEM as secret",
			token:      func() string { return hmacToken(t, f.ec.publicPEM(t), "ec-1", f.claims(nil)) },
			wantStatus: 401, wantReason: ReasonAlg,
		},
		{
			name: "RS256 naming the EC key",
			token: func() string {
				return f.rsa.sign(t, "RS256", f.claims(nil), map[string]any{"kid": "ec-1"})
			},
			wantStatus: 401, wantReason: ReasonAlg,
		},
		{
			name: "ES384 naming the P-256 key",
			token: func() string {
				return f.ec384.sign(t, "ES384", f.claims(nil), map[string]any{"kid": "ec-1"})
			},
			wantStatus: 401, wantReason: ReasonAlg,
		},
		{
			name: "ES512 not accepted",
			token: func() string {
				return encodeParts(t, map[string]any{"alg": "ES512", "kid": "ec-1"}, f.claims(nil)) + ".c2ln"
			},
			wantStatus: 401, wantReason: ReasonAlg,
		},

		// Signature.
		{
			name: "claims tampered",
			token: func() string {
				tok := f.rsa.sign(t, "RS256", f.claims(nil), nil)
				parts := strings.Split(tok, ".")
				forged := encodeParts(t, map[string]any{}, f.claims(map[string]any{"sub": "bob-user"}))
				return parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
			},
			wantStatus: 401, wantReason: ReasonBadSignature,
		},
		{
			name: "signed by another key under a published kid",
			token: func() string {
				return newRSAKey(t, "rsa-1", 1).sign(t, "RS256", f.claims(nil), nil)
			},
			wantStatus: 401, wantReason: ReasonBadSignature,
		},
		{
			name: "ES256 signature truncated",
			token: func() string {
				tok := f.ec.sign(t, "ES256", f.claims(nil), nil)
				return tok[:len(tok)-4]
			},
			wantStatus: 401, wantReason: ReasonBadSignature,
		},
		{
			name: "empty signature",
			token: func() string {
				tok := f.rsa.sign(t, "RS256", f.claims(nil), nil)
				return tok[:strings.LastIndex(tok, ".")+1]
			},
			wantStatus: 401, wantReason: ReasonBadSignature,
		},

		// Time.
		{
			name: "expired",
			token: func() string {
				return f.rsa.sign(t, "RS256", f.claims(map[string]any{"exp": testNow.Add(-hour).Unix()}), nil)
			},
			wantStatus: 401, wantReason: ReasonExpired,
		},
		{
			name: "expired just beyond leeway",
			token: func() string {
				return f.ec.sign(t, "ES256", f.claims(map[string]any{"exp": testNow.Add(-31 * time.Second).Unix()}), nil)
			},
			wantStatus: 401, wantReason: ReasonExpired,
		},
		{
			name:       "no exp",
			token:      func() string { return f.rsa.sign(t, "RS256", f.claims(map[string]any{"exp": nil}), nil) },
			wantStatus: 401, wantReason: ReasonBadToken,
		},
		{
			name:       "exp not a number",
			token:      func() string { return f.rsa.sign(t, "RS256", f.claims(map[string]any{"exp": "tomorrow"}), nil) },
			wantStatus: 401, wantReason: ReasonBadToken,
		},
		{
			name:       "exp absurdly far",
			token:      func() string { return f.rsa.sign(t, "RS256", f.claims(map[string]any{"exp": 1e300}), nil) },
			wantStatus: 401, wantReason: ReasonBadToken,
		},
		{
			name: "nbf in the future",
			token: func() string {
				return f.rsa.sign(t, "RS256", f.claims(map[string]any{"nbf": testNow.Add(5 * time.Minute).Unix()}), nil)
			},
			wantStatus: 401, wantReason: ReasonNotYetValid,
		},
		{
			name: "iat in the future",
			token: func() string {
				return f.ec.sign(t, "ES256", f.claims(map[string]any{"iat": testNow.Add(5 * time.Minute).Unix()}), nil)
			},
			wantStatus: 401, wantReason: ReasonNotYetValid,
		},

		// Claims.
		{
			name: "wrong iss",
			token: func() string {
				return f.rsa.sign(t, "RS256", f.claims(map[string]any{"iss": "https://evil.example"}), nil)
			},
			wantStatus: 401, wantReason: ReasonIssuer,
		},
		{
			name:       "no iss",
			token:      func() string { return f.rsa.sign(t, "RS256", f.claims(map[string]any{"iss": nil}), nil) },
			wantStatus: 401, wantReason: ReasonIssuer,
		},
		{
			name: "iss with trailing slash",
			token: func() string {
				return f.rsa.sign(t, "RS256", f.claims(map[string]any{"iss": f.iss.srv.URL + "/"}), nil)
			},
			wantStatus: 401, wantReason: ReasonIssuer,
		},
		{
			name: "ISS in another case is not iss",
			token: func() string {
				return f.rsa.sign(t, "RS256", f.claims(map[string]any{"iss": nil, "ISS": f.iss.srv.URL}), nil)
			},
			wantStatus: 401, wantReason: ReasonIssuer,
		},
		{
			name:       "wrong aud",
			token:      func() string { return f.rsa.sign(t, "RS256", f.claims(map[string]any{"aud": "another-api"}), nil) },
			wantStatus: 401, wantReason: ReasonAudience,
		},
		{
			name:       "aud array without an accepted audience",
			token:      func() string { return f.rsa.sign(t, "RS256", f.claims(map[string]any{"aud": []string{"a", "b"}}), nil) },
			wantStatus: 401, wantReason: ReasonAudience,
		},
		{
			name:       "neither aud nor client_id",
			token:      func() string { return f.rsa.sign(t, "RS256", f.claims(map[string]any{"aud": nil}), nil) },
			wantStatus: 401, wantReason: ReasonAudience,
		},
		{
			name: "Cognito access token with wrong client_id",
			token: func() string {
				return f.rsa.sign(t, "RS256", f.claims(map[string]any{"aud": nil, "client_id": "other-client"}), nil)
			},
			wantStatus: 401, wantReason: ReasonAudience,
		},
		{
			name: "aud of another API is not rescued by client_id",
			token: func() string {
				return f.rsa.sign(t, "RS256", f.claims(map[string]any{"aud": "another-api", "client_id": "app-client-1"}), nil)
			},
			wantStatus: 401, wantReason: ReasonAudience,
		},
		{
			name:       "aud not a string",
			token:      func() string { return f.rsa.sign(t, "RS256", f.claims(map[string]any{"aud": 7}), nil) },
			wantStatus: 401, wantReason: ReasonBadToken,
		},
		{
			name:       "wrong token_use",
			token:      func() string { return f.rsa.sign(t, "RS256", f.claims(map[string]any{"token_use": "id"}), nil) },
			wantStatus: 401, wantReason: ReasonTokenUse,
		},
		{
			name:       "no token_use",
			token:      func() string { return f.rsa.sign(t, "RS256", f.claims(map[string]any{"token_use": nil}), nil) },
			wantStatus: 401, wantReason: ReasonTokenUse,
		},
		{
			name:       "crit header",
			token:      func() string { return f.rsa.sign(t, "RS256", f.claims(nil), map[string]any{"crit": []string{"exp"}}) },
			wantStatus: 401, wantReason: ReasonBadToken,
		},

		// Keys.
		{
			name:       "unknown kid",
			token:      func() string { return newRSAKey(t, "rsa-unpublished", 2).sign(t, "RS256", f.claims(nil), nil) },
			wantStatus: 401, wantReason: ReasonUnknownKey,
		},

		// Ownership.
		{
			name:       "valid token of a non-owner",
			token:      func() string { return f.rsa.sign(t, "RS256", f.claims(map[string]any{"sub": "mallory"}), nil) },
			wantStatus: 403, wantReason: ReasonForbidden,
		},
		{
			name: "non-owner sub and username",
			token: func() string {
				return f.ec.sign(t, "ES256", f.claims(map[string]any{"sub": "x", "username": "mallory"}), nil)
			},
			wantStatus: 403, wantReason: ReasonForbidden,
		},
		{
			name:       "no subject at all",
			token:      func() string { return f.rsa.sign(t, "RS256", f.claims(map[string]any{"sub": nil}), nil) },
			wantStatus: 401, wantReason: ReasonBadToken,
		},

		// Not a credential.
		{
			name:       "unknown static token",
			token:      func() string { return "furrow_not-the-configured-token" },
			wantStatus: 401, wantReason: ReasonBadToken,
		},
		{
			name:       "three garbage parts",
			token:      func() string { return "abc.def.ghi" },
			wantStatus: 401, wantReason: ReasonBadToken,
		},
		{
			name:       "header not JSON",
			token:      func() string { return b64u([]byte("[1]")) + "." + b64u([]byte("{}")) + ".c2ln" },
			wantStatus: 401, wantReason: ReasonBadToken,
		},
		{
			name:       "four parts",
			token:      func() string { return f.rsa.sign(t, "RS256", f.claims(nil), nil) + ".x" },
			wantStatus: 401, wantReason: ReasonBadToken,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := f.auth.Check(request(bearer(tt.token())))
			checkResult(t, p, err, tt.wantStatus, tt.wantReason)
			if tt.wantStatus == 200 && (p.Subject != tt.wantSubject || p.Method != tt.wantMethod) {
				t.Fatalf("principal = %+v, want %s/%s", p, tt.wantSubject, tt.wantMethod)
			}
		})
	}
}

func TestCheckHeader(t *testing.T) {
	f := newFixture(t, nil)
	good := f.rsa.sign(t, "RS256", f.claims(nil), nil)
	tests := []struct {
		name       string
		headers    []string
		wantStatus int
		wantReason string
	}{
		{"missing", nil, 401, ReasonMissing},
		{"empty", []string{""}, 401, ReasonMissing},
		{"blank", []string{"   "}, 401, ReasonMissing},
		{"basic scheme", []string{"Basic YWxpY2U6c2VjcmV0"}, 401, ReasonMalformed},
		{"bearer without token", []string{"Bearer"}, 401, ReasonMalformed},
		{"bearer with spaces only", []string{"Bearer    "}, 401, ReasonMalformed},
		{"token with a space", []string{"Bearer abc def"}, 401, ReasonMalformed},
		{"token with a quote", []string{`Bearer "abc"`}, 401, ReasonMalformed},
		{"token with = inside", []string{"Bearer ab=c"}, 401, ReasonMalformed},
		{"two headers", []string{bearer(good), bearer(good)}, 401, ReasonMalformed},
		{"huge token", []string{bearer(strings.Repeat("a", maxTokenLen+1))}, 401, ReasonMalformed},
		{"token only", []string{good}, 401, ReasonMalformed},
		{"lower-case scheme", []string{"bearer " + good}, 200, ""},
		{"upper-case scheme, two spaces", []string{"BEARER  " + good}, 200, ""},
		{"static token", []string{bearer(staticToken)}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := f.auth.Check(request(tt.headers...))
			checkResult(t, p, err, tt.wantStatus, tt.wantReason)
		})
	}
}

func TestMiddleware(t *testing.T) {
	f := newFixture(t, nil)
	var got Principal
	h := f.auth.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := FromContext(r.Context())
		if !ok {
			t.Error("no principal in context")
		}
		got = p
		w.WriteHeader(http.StatusNoContent)
	}))
	owner := f.rsa.sign(t, "RS256", f.claims(nil), nil)
	expired := f.rsa.sign(t, "RS256", f.claims(map[string]any{"exp": testNow.Add(-time.Hour).Unix()}), nil)
	stranger := f.ec.sign(t, "ES256", f.claims(map[string]any{"sub": "mallory"}), nil)
	const badStatic = "furrow_secret-value-that-must-not-leak"
	tests := []struct {
		name          string
		headers       []string
		wantStatus    int
		wantChallenge string
		wantError     string
	}{
		{"owner", []string{bearer(owner)}, 204, "", ""},
		{"static token", []string{bearer(staticToken)}, 204, "", ""},
		{"missing", nil, 401, `Bearer realm="furrow"`, reasonText[ReasonMissing]},
		{"malformed", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(badStatic))}, 401, `Bearer realm="furrow"`, reasonText[ReasonMalformed]},
		{"expired", []string{bearer(expired)}, 401, `Bearer realm="furrow", error="invalid_token"`, reasonText[ReasonExpired]},
		{"bad static token", []string{bearer(badStatic)}, 401, `Bearer realm="furrow", error="invalid_token"`, reasonText[ReasonBadToken]},
		{"non-owner", []string{bearer(stranger)}, 403, `Bearer realm="furrow", error="insufficient_scope"`, reasonText[ReasonForbidden]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = Principal{}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, request(tt.headers...))
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantStatus == 204 {
				if got.Subject == "" {
					t.Fatal("handler saw no subject")
				}
				return
			}
			if c := w.Header().Get("WWW-Authenticate"); c != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", c, tt.wantChallenge)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			body := w.Body.String()
			var doc map[string]string
			if err := json.Unmarshal([]byte(body), &doc); err != nil || len(doc) != 1 || doc["error"] != tt.wantError {
				t.Errorf("body %q, want {\"error\":%q}", body, tt.wantError)
			}
			for _, secret := range append(tt.headers, owner, expired, stranger, badStatic, staticToken) {
				if _, v, ok := strings.Cut(secret, " "); ok {
					secret = v
				}
				if secret != "" && strings.Contains(body, secret) {
					t.Errorf("body %q echoes the credential", body)
				}
			}
			if len(body) > 100 {
				t.Errorf("body of %d bytes is not small", len(body))
			}
		})
	}
}

// TestKeyRotation publishes a new key after the JWKS is cached: a token
// signed with it triggers one refetch, which picks the key up.
func TestKeyRotation(t *testing.T) {
	f := newFixture(t, nil)
	f.auth.keys.refetchInterval = time.Second
	old := f.rsa.sign(t, "RS256", f.claims(nil), nil)
	if _, err := f.auth.Check(request(bearer(old))); err != nil {
		t.Fatal(err)
	}
	if n := f.iss.jwksFetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches, want 1", n)
	}

	rotated := newECKey(t, "ec-2", "ES256", elliptic.P256())
	fresh := rotated.sign(t, "ES256", f.claims(nil), nil)
	f.iss.publish(rotated)

	// Within the refetch interval the new kid is unknown and nothing is
	// fetched.
	p, err := f.auth.Check(request(bearer(fresh)))
	checkResult(t, p, err, 401, ReasonUnknownKey)
	if n := f.iss.jwksFetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches within the interval, want 1", n)
	}

	time.Sleep(1100 * time.Millisecond)
	if _, err := f.auth.Check(request(bearer(fresh))); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if _, err := f.auth.Check(request(bearer(old))); err != nil {
		t.Fatalf("old key after rotation: %v", err)
	}
	if n := f.iss.jwksFetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2", n)
	}
	if n := f.iss.discoveryFetches.Load(); n != 1 {
		t.Fatalf("%d discovery fetches, want 1 (jwks_uri is cached)", n)
	}
}

// TestUnknownKidBurst sends many concurrent tokens with unknown kids: they
// cause at most one JWKS fetch, both on a cold cache and once the refetch
// interval has passed.
func TestUnknownKidBurst(t *testing.T) {
	f := newFixture(t, nil)
	f.auth.keys.refetchInterval = time.Second
	stranger := newECKey(t, "", "", elliptic.P256())
	var tokens []string
	for i := range 50 {
		k := *stranger
		k.kid = fmt.Sprintf("forged-%d", i)
		tokens = append(tokens, k.sign(t, "ES256", f.claims(nil), nil))
	}
	burst := func() {
		t.Helper()
		var wg sync.WaitGroup
		for _, tok := range tokens {
			wg.Go(func() {
				p, err := f.auth.Check(request(bearer(tok)))
				var e *Error
				if p != (Principal{}) || !errors.As(err, &e) || e.Reason != ReasonUnknownKey {
					t.Errorf("forged kid: %+v, %v", p, err)
				}
			})
		}
		wg.Wait()
	}
	burst()
	if n := f.iss.jwksFetches.Load(); n != 1 {
		t.Fatalf("cold burst: %d JWKS fetches, want 1", n)
	}
	burst()
	if n := f.iss.jwksFetches.Load(); n != 1 {
		t.Fatalf("second burst within the interval: %d JWKS fetches, want 1", n)
	}
	time.Sleep(1100 * time.Millisecond)
	burst()
	if n := f.iss.jwksFetches.Load(); n != 2 {
		t.Fatalf("burst after the interval: %d JWKS fetches, want 2", n)
	}
	if got := promtest.ToFloat64(f.auth.failures.WithLabelValues(ReasonUnknownKey)); got != 150 {
		t.Fatalf("unknown_key failures = %v, want 150", got)
	}
}

// TestDefaultRefetchInterval checks the default rate limit: after the
// first fetch, unknown kids fetch nothing for 10 s.
func TestDefaultRefetchInterval(t *testing.T) {
	f := newFixture(t, nil)
	if f.auth.keys.refetchInterval != 10*time.Second {
		t.Fatalf("refetchInterval = %s", f.auth.keys.refetchInterval)
	}
	if _, err := f.auth.Check(request(bearer(f.rsa.sign(t, "RS256", f.claims(nil), nil)))); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		k := newECKey(t, "new-"+string(rune('0'+i)), "", elliptic.P256())
		p, err := f.auth.Check(request(bearer(k.sign(t, "ES256", f.claims(nil), nil))))
		checkResult(t, p, err, 401, ReasonUnknownKey)
	}
	if n := f.iss.jwksFetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches, want 1", n)
	}
}

// TestIssuerDown checks that an unreachable or failing issuer yields 401
// jwks_unavailable, never 500, is retried after the interval, and that
// cached keys outlive a failing refetch.
func TestIssuerDown(t *testing.T) {
	t.Run("failing then recovering", func(t *testing.T) {
		f := newFixture(t, nil)
		f.auth.keys.refetchInterval = 500 * time.Millisecond
		f.iss.setStatus(http.StatusServiceUnavailable)
		tok := f.rsa.sign(t, "RS256", f.claims(nil), nil)
		h := f.auth.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		for range 3 {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, request(bearer(tok)))
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", w.Code)
			}
			if !strings.Contains(w.Body.String(), reasonText[ReasonJWKSUnavailable]) {
				t.Fatalf("body %s", w.Body)
			}
		}
		if n := f.iss.discoveryFetches.Load(); n != 1 {
			t.Fatalf("%d discovery fetches, want 1 (rate limited)", n)
		}
		if got := promtest.ToFloat64(f.auth.failures.WithLabelValues(ReasonJWKSUnavailable)); got != 3 {
			t.Fatalf("jwks_unavailable failures = %v, want 3", got)
		}
		// Static tokens work while the issuer is down.
		if _, err := f.auth.Check(request(bearer(staticToken))); err != nil {
			t.Fatal(err)
		}

		f.iss.setStatus(0)
		time.Sleep(600 * time.Millisecond)
		if _, err := f.auth.Check(request(bearer(tok))); err != nil {
			t.Fatalf("after recovery: %v", err)
		}

		// Down again: the cached keys still serve known kids, and unknown
		// kids are unknown_key.
		f.iss.setStatus(http.StatusInternalServerError)
		time.Sleep(600 * time.Millisecond)
		if _, err := f.auth.Check(request(bearer(tok))); err != nil {
			t.Fatalf("cached keys while down: %v", err)
		}
		p, err := f.auth.Check(request(bearer(newRSAKey(t, "rsa-new", 1).sign(t, "RS256", f.claims(nil), nil))))
		checkResult(t, p, err, 401, ReasonUnknownKey)
	})

	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		k := newRSAKey(t, "k", 0)
		a, err := New(t.Context(), Options{Issuer: url, Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatalf("New with an unreachable issuer: %v", err)
		}
		tok := k.sign(t, "RS256", map[string]any{"iss": url, "sub": "a", "exp": testNow.Add(time.Hour).Unix()}, nil)
		p, err := a.Check(request(bearer(tok)))
		checkResult(t, p, err, 401, ReasonJWKSUnavailable)
	})

	t.Run("discovery names another issuer", func(t *testing.T) {
		iss := newTestIssuer(t)
		k := newRSAKey(t, "k", 0)
		iss.publish(k)
		a, err := New(t.Context(), Options{Issuer: iss.srv.URL + "/pool", Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		p, err := a.Check(request(bearer(k.sign(t, "RS256", map[string]any{"iss": iss.srv.URL + "/pool", "sub": "a", "exp": testNow.Add(time.Hour).Unix()}, nil))))
		checkResult(t, p, err, 401, ReasonJWKSUnavailable)
	})

	t.Run("JWKS not JSON", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("<html>"))
		}))
		t.Cleanup(srv.Close)
		a, err := New(t.Context(), Options{JWKSURL: srv.URL, Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		k := newRSAKey(t, "k", 0)
		p, err := a.Check(request(bearer(k.sign(t, "RS256", map[string]any{"sub": "a", "exp": testNow.Add(time.Hour).Unix()}, nil))))
		checkResult(t, p, err, 401, ReasonJWKSUnavailable)
	})

	t.Run("context done", func(t *testing.T) {
		f := newFixture(t, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		a, err := New(ctx, f.options)
		if err != nil {
			t.Fatal(err)
		}
		p, err := a.Check(request(bearer(f.rsa.sign(t, "RS256", f.claims(nil), nil))))
		checkResult(t, p, err, 401, ReasonJWKSUnavailable)
	})
}

// TestJWKSURL uses a JWKS URL without discovery or issuer check, and
// checks which JWKS members are ignored.
func TestJWKSURL(t *testing.T) {
	iss := newTestIssuer(t)
	sig := newRSAKey(t, "sig", 0)
	enc := newRSAKey(t, "enc", 1)
	iss.publish(sig)
	encJWK := enc.jwk()
	encJWK["use"] = "enc"
	iss.publishRaw(encJWK)
	iss.publishRaw(map[string]any{"kty": "oct", "kid": "hmac", "k": b64u([]byte("secret"))})
	iss.publishRaw(map[string]any{"kty": "RSA", "kid": "small", "n": b64u([]byte{0xc3, 0x01}), "e": "AQAB"})
	iss.publishRaw(map[string]any{"kty": "EC", "kid": "off-curve", "crv": "P-256", "x": b64u(make([]byte, 32)), "y": b64u(make([]byte, 32))})
	ec := newECKey(t, "mislabelled", "", elliptic.P256())
	mis := ec.jwk()
	mis["alg"] = "RS256"
	iss.publishRaw(mis)

	a, err := New(t.Context(), Options{JWKSURL: iss.srv.URL + "/jwks.json", Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"iss": "anyone", "sub": "carol", "exp": testNow.Add(time.Hour).Unix()}
	p, err := a.Check(request(bearer(sig.sign(t, "RS256", claims, nil))))
	if err != nil || p.Subject != "carol" {
		t.Fatalf("Check = %+v, %v", p, err)
	}
	if iss.discoveryFetches.Load() != 0 {
		t.Fatal("discovery fetched although jwks_url is set")
	}
	for _, tt := range []struct {
		name, want string
		token      string
	}{
		{"use enc", ReasonUnknownKey, enc.sign(t, "RS256", claims, nil)},
		{"oct key as HMAC", ReasonAlg, hmacToken(t, []byte("secret"), "hmac", claims)},
		{"small RSA key", ReasonUnknownKey, enc.sign(t, "RS256", claims, map[string]any{"kid": "small"})},
		{"off-curve EC key", ReasonUnknownKey, ec.sign(t, "ES256", claims, map[string]any{"kid": "off-curve"})},
		{"EC key labelled RS256", ReasonUnknownKey, ec.sign(t, "ES256", claims, nil)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Check(request(bearer(tt.token)))
			checkResult(t, p, err, 401, tt.want)
		})
	}
	if n := iss.jwksFetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches, want 1", n)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want []string // substrings of the joined error
	}{
		{"nothing configured", Options{}, []string{"admin.auth: none of issuer, jwks_url or token_hashes"}},
		{
			"everything wrong at once",
			Options{
				Issuer:      "ftp://idp.example",
				JWKSURL:     "https://idp.example/%zz",
				Audience:    []string{""},
				Owners:      []string{" alice"},
				TokenHashes: []string{"md5:abc", "sha256:" + strings.Repeat("0", 63), "sha256:" + strings.Repeat("g", 64)},
				Leeway:      -time.Second,
			},
			[]string{
				"admin.auth.issuer: ",
				"admin.auth.jwks_url: ",
				"admin.auth.audience[0]: empty",
				"admin.auth.owners[0]: ",
				"admin.auth.token_hashes[0]: ",
				"admin.auth.token_hashes[1]: ",
				"admin.auth.token_hashes[2]: ",
				"admin.auth.leeway: ",
			},
		},
		{"relative jwks_url", Options{JWKSURL: "/jwks.json"}, []string{"admin.auth.jwks_url: "}},
		{"issuer without host", Options{Issuer: "https://"}, []string{"admin.auth.issuer: "}},
		{"issuer with query", Options{Issuer: "https://idp.example/?x=1"}, []string{"admin.auth.issuer: "}},
		{"issuer with credentials", Options{Issuer: "https://u:p@idp.example"}, []string{"admin.auth.issuer: "}},
		{
			"JWT settings without a JWT source",
			Options{TokenHashes: []string{HashToken("x")}, Audience: []string{"a"}, TokenUse: "access", Owners: []string{"o"}},
			[]string{"admin.auth.audience: ", "admin.auth.token_use: ", "admin.auth.owners: "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(t.Context(), tt.o)
			if err == nil || a != nil {
				t.Fatalf("New = %v, %v; want an error", a, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(tt.want) {
				t.Errorf("%d errors, want %d: %v", n, len(tt.want), err)
			}
		})
	}

	valid := []Options{
		{TokenHashes: []string{HashToken("x")}},
		{Issuer: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123", Audience: []string{"client"}, TokenUse: "access"},
		{JWKSURL: "https://idp.example/.well-known/jwks.json", Owners: []string{"alice"}},
		{Issuer: "https://idp.example/", JWKSURL: "https://keys.example/jwks"},
	}
	for i, o := range valid {
		if _, err := New(t.Context(), o); err != nil {
			t.Errorf("valid options %d: %v", i, err)
		}
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, nil)
	checks := []struct {
		headers []string
	}{
		{nil},
		{[]string{"Basic x"}},
		{[]string{bearer(staticToken)}},
		{[]string{bearer(staticToken)}},
		{[]string{bearer(f.rsa.sign(t, "RS256", f.claims(nil), nil))}},
		{[]string{bearer(f.rsa.sign(t, "RS256", f.claims(map[string]any{"exp": testNow.Add(-time.Hour).Unix()}), nil))}},
		{[]string{bearer(f.rsa.sign(t, "RS256", f.claims(map[string]any{"sub": "mallory"}), nil))}},
		{[]string{bearer("furrow_wrong")}},
	}
	for _, c := range checks {
		_, _ = f.auth.Check(request(c.headers...))
	}
	want := map[string]float64{
		ReasonMissing: 1, ReasonMalformed: 1, ReasonExpired: 1, ReasonForbidden: 1, ReasonBadToken: 1,
		ReasonAlg: 0, ReasonJWKSUnavailable: 0,
	}
	for reason, n := range want {
		if got := promtest.ToFloat64(f.auth.failures.WithLabelValues(reason)); got != n {
			t.Errorf("failures{reason=%q} = %v, want %v", reason, got, n)
		}
	}
	if got := promtest.ToFloat64(f.auth.success.WithLabelValues(MethodToken)); got != 2 {
		t.Errorf("success{method=token} = %v, want 2", got)
	}
	if got := promtest.ToFloat64(f.auth.success.WithLabelValues(MethodJWT)); got != 1 {
		t.Errorf("success{method=jwt} = %v, want 1", got)
	}

	// Registered under the documented names, with every reason present.
	n, err := promtest.GatherAndCount(f.reg, "furrow_admin_auth_failures_total", "furrow_admin_auth_success_total")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(reasonText)+2 {
		t.Errorf("%d series, want %d", n, len(reasonText)+2)
	}

	// A second Authenticator on the same registry shares the counters.
	b, err := New(t.Context(), f.options)
	if err != nil {
		t.Fatalf("second Authenticator on one registry: %v", err)
	}
	_, _ = b.Check(request())
	if got := promtest.ToFloat64(f.auth.failures.WithLabelValues(ReasonMissing)); got != 2 {
		t.Errorf("shared missing counter = %v, want 2", got)
	}
}

func TestReasonsFixed(t *testing.T) {
	want := []string{"missing", "malformed", "bad_signature", "alg", "expired", "not_yet_valid", "issuer", "audience", "token_use", "unknown_key", "jwks_unavailable", "forbidden", "bad_token"}
	if len(reasonText) != len(want) {
		t.Fatalf("%d reasons, want %d", len(reasonText), len(want))
	}
	for _, r := range want {
		if reasonText[r] == "" {
			t.Errorf("reason %q has no text", r)
		}
	}
}

func TestHashAndNewToken(t *testing.T) {
	// SHA-256 of "abc" (FIPS 180-2 test vector).
	if got, want := HashToken("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Fatalf("HashToken(abc) = %s, want %s", got, want)
	}
	shape := regexp.MustCompile(`^furrow_[A-Za-z0-9_-]{43}$`)
	seen := map[string]bool{}
	for range 20 {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !shape.MatchString(tok) {
			t.Fatalf("NewToken() = %q", tok)
		}
		if seen[tok] {
			t.Fatal("NewToken repeated a token")
		}
		seen[tok] = true
	}

	// A new token, configured by its hash, authenticates.
	tok, _ := NewToken()
	a, err := New(t.Context(), Options{TokenHashes: []string{HashToken("other"), HashToken(tok)}})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := a.Check(request(bearer(tok))); err != nil || p.Method != MethodToken {
		t.Fatalf("Check = %+v, %v", p, err)
	}
	// Upper-case hex is accepted too.
	b, err := New(t.Context(), Options{TokenHashes: []string{"sha256:" + strings.ToUpper(strings.TrimPrefix(HashToken(tok), "sha256:"))}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Check(request(bearer(tok))); err != nil {
		t.Fatal(err)
	}
}

// TestStaleKeysRefetched checks that keys older than maxAge are refetched,
// so that a key the issuer withdrew stops verifying.
func TestStaleKeysRefetched(t *testing.T) {
	f := newFixture(t, nil)
	f.auth.keys.refetchInterval = 0
	f.auth.keys.maxAge = 200 * time.Millisecond
	tok := f.ec.sign(t, "ES256", f.claims(nil), nil)
	if _, err := f.auth.Check(request(bearer(tok))); err != nil {
		t.Fatal(err)
	}
	// Withdraw the EC key.
	f.iss.mu.Lock()
	f.iss.keys = f.iss.keys[:1]
	f.iss.mu.Unlock()
	if _, err := f.auth.Check(request(bearer(tok))); err != nil {
		t.Fatalf("fresh cache: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	p, err := f.auth.Check(request(bearer(tok)))
	checkResult(t, p, err, 401, ReasonUnknownKey)
	if n := f.iss.jwksFetches.Load(); n < 2 {
		t.Fatalf("%d JWKS fetches, want a refetch", n)
	}
}
