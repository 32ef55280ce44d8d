package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzCheck feeds arbitrary Authorization header values to Check and
// Middleware: they must never panic, never answer 500, and only ever
// answer 200, 401 or 403 with a body that does not echo the value.
func FuzzCheck(f *testing.F) {
	fx := newFixture(f, nil)
	good := fx.rsa.sign(f, "RS256", fx.claims(nil), nil)
	parts := strings.Split(good, ".")
	seeds := []string{
		"",
		"Bearer",
		"Bearer ",
		"bearer " + good,
		"Bearer " + good,
		"Bearer " + staticToken,
		"Bearer " + parts[0] + "." + parts[1] + ".",
		"Bearer " + parts[0] + ".." + parts[2],
		"Bearer ..",
		"Bearer " + hmacToken(f, fx.rsa.publicPEM(f), "rsa-1", fx.claims(nil)),
		"Bearer " + encodeParts(f, map[string]any{"alg": "none"}, fx.claims(nil)) + ".",
		"Bearer " + b64u([]byte(`{"alg":"ES256","kid":"ec-1"}`)) + "." + b64u([]byte(`{"exp":1e400}`)) + ".AAAA",
		"Bearer " + b64u([]byte(`{"alg":"RS256","kid":7}`)) + ".e30.AAAA",
		"Basic YTpi",
		"Bearer a==",
		"Bearer =",
		"Bearer \x00",
		"Bearer " + strings.Repeat("A", 1000) + "." + strings.Repeat("B", 1000) + "." + strings.Repeat("C", 1000),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	h := fx.auth.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	f.Fuzz(func(t *testing.T, value string) {
		r := httptest.NewRequest(http.MethodGet, "/admin/v1/status", nil)
		r.Header.Set("Authorization", value)
		_, err := fx.auth.Check(r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			if e.Status != http.StatusUnauthorized && e.Status != http.StatusForbidden {
				t.Fatalf("status %d for %q", e.Status, value)
			}
			if _, ok := reasonText[e.Reason]; !ok {
				t.Fatalf("reason %q is not in the fixed set", e.Reason)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK, http.StatusUnauthorized, http.StatusForbidden:
		default:
			t.Fatalf("status %d for %q", w.Code, value)
		}
		if _, tok, _ := strings.Cut(value, " "); len(tok) > 8 && strings.Contains(w.Body.String(), tok) {
			t.Fatalf("body %q echoes the token", w.Body)
		}
	})
}
