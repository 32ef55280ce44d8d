// Package auth authenticates requests to furrow's admin API.
//
// Two kinds of bearer credential are accepted:
//
//   - JWTs from an OpenID Connect issuer (AWS Cognito user pools included),
//     verified against the issuer's JWKS, fetched lazily and cached;
//   - static API tokens, configured as "sha256:<hex>" hashes so that the
//     configuration never holds a usable secret (see HashToken and NewToken).
//
// Failures are answered with 401 (or 403 for a valid token whose subject is
// not an owner), a small JSON body {"error":"..."} that never echoes the
// credential, and counted in furrow_admin_auth_failures_total{reason}.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config field names, as they appear in error messages.
const (
	fieldPrefix      = "admin.auth"
	fieldIssuer      = fieldPrefix + ".issuer"
	fieldJWKSURL     = fieldPrefix + ".jwks_url"
	fieldAudience    = fieldPrefix + ".audience"
	fieldTokenUse    = fieldPrefix + ".token_use"
	fieldOwners      = fieldPrefix + ".owners"
	fieldTokenHashes = fieldPrefix + ".token_hashes"
	fieldLeeway      = fieldPrefix + ".leeway"
)

const (
	defaultLeeway          = 30 * time.Second
	defaultHTTPTimeout     = 10 * time.Second
	defaultRefetchInterval = 10 * time.Second
	defaultMaxKeyAge       = time.Hour
	// maxTokenLen bounds the bearer token accepted for parsing.
	maxTokenLen = 16 << 10
)

// Options configures an Authenticator. At least one of Issuer, JWKSURL or
// TokenHashes must be set.
type Options struct {
	// Issuer is the OpenID Connect issuer. When set, a JWT's iss claim must
	// equal it exactly, and, unless JWKSURL is set, the signing keys come
	// from the jwks_uri of Issuer+"/.well-known/openid-configuration". An
	// AWS Cognito user pool's issuer is
	// https://cognito-idp.{region}.amazonaws.com/{poolId}.
	Issuer string
	// JWKSURL is the URL of the JSON Web Key Set that signs JWTs. It
	// overrides discovery through Issuer.
	JWKSURL string
	// Audience, when set, requires a JWT's aud claim to contain one of the
	// values or, for tokens without aud (Cognito access tokens), the
	// client_id claim to equal one of them.
	Audience []string
	// TokenUse, when set (e.g. "access" or "id" for Cognito), requires the
	// token_use claim to equal it.
	TokenUse string
	// Owners, when set, admits only JWTs whose sub or username claim equals
	// one of the values; other valid JWTs are refused with 403.
	Owners []string
	// TokenHashes are static API tokens, each "sha256:<hex>" of the token
	// (see HashToken). A bearer token whose hash matches one is allowed.
	TokenHashes []string
	// HTTPClient fetches discovery documents and JWKS. The default has a
	// 10 s timeout.
	HTTPClient *http.Client
	// Leeway is the clock skew allowed for exp, nbf and iat. Zero means the
	// default, 30 s.
	Leeway time.Duration
	// Now returns the current time; the default is time.Now.
	Now func() time.Time
	// Registry, when not nil, receives the authentication metrics.
	Registry prometheus.Registerer
	// Logger receives fetch errors (warn) and refusals (debug); nil
	// discards.
	Logger *slog.Logger
}

// Principal is an authenticated caller.
type Principal struct {
	// Subject is the JWT's sub claim (or username when sub is absent), or,
	// for a static token, "token:" and the first 12 hex digits of its hash.
	Subject string
	// Method is "jwt" or "token".
	Method string
}

// Authentication methods, the values of Principal.Method and of the method
// label of furrow_admin_auth_success_total.
const (
	MethodJWT   = "jwt"
	MethodToken = "token"
)

// Reasons are the values of the reason label of
// furrow_admin_auth_failures_total and of Error.Reason.
const (
	ReasonMissing         = "missing"
	ReasonMalformed       = "malformed"
	ReasonBadSignature    = "bad_signature"
	ReasonAlg             = "alg"
	ReasonExpired         = "expired"
	ReasonNotYetValid     = "not_yet_valid"
	ReasonIssuer          = "issuer"
	ReasonAudience        = "audience"
	ReasonTokenUse        = "token_use"
	ReasonUnknownKey      = "unknown_key"
	ReasonJWKSUnavailable = "jwks_unavailable"
	ReasonForbidden       = "forbidden"
	ReasonBadToken        = "bad_token"
)

// reasonText is the fixed message sent to the client for each reason.
var reasonText = map[string]string{
	ReasonMissing:         "missing bearer token",
	ReasonMalformed:       "malformed Authorization header",
	ReasonBadSignature:    "invalid token signature",
	ReasonAlg:             "token algorithm not accepted",
	ReasonExpired:         "token expired",
	ReasonNotYetValid:     "token not yet valid",
	ReasonIssuer:          "token issuer not accepted",
	ReasonAudience:        "token audience not accepted",
	ReasonTokenUse:        "token use not accepted",
	ReasonUnknownKey:      "token signing key unknown",
	ReasonJWKSUnavailable: "token signing keys unavailable",
	ReasonForbidden:       "not an owner",
	ReasonBadToken:        "invalid token",
}

// Error is a refused request. Status is http.StatusUnauthorized or
// http.StatusForbidden; Reason is one of the Reason constants. The message
// holds details for logs and never the credential itself.
type Error struct {
	Status int
	Reason string
	detail string
}

func (e *Error) Error() string {
	if e.detail == "" {
		return "auth: " + e.Reason
	}
	return "auth: " + e.Reason + ": " + e.detail
}

func fail(reason, format string, args ...any) *Error {
	status := http.StatusUnauthorized
	if reason == ReasonForbidden {
		status = http.StatusForbidden
	}
	e := &Error{Status: status, Reason: reason}
	if format != "" {
		e.detail = fmt.Sprintf(format, args...)
	}
	return e
}

// Authenticator checks admin API requests. It is safe for concurrent use.
type Authenticator struct {
	issuer   string
	audience []string
	tokenUse string
	owners   []string
	hashes   [][sha256.Size]byte
	leeway   time.Duration
	now      func() time.Time
	log      *slog.Logger
	keys     *keySet // nil when no JWT source is configured
	failures *prometheus.CounterVec
	success  *prometheus.CounterVec
}

// New validates o and returns an Authenticator. Every invalid field is
// reported, joined with errors.Join, each error naming its config field
// (e.g. "admin.auth.jwks_url: ..."). The issuer need not be reachable: keys
// are fetched on first use and refetched later when that fails. ctx bounds
// those fetches, so it should live as long as the Authenticator.
func New(ctx context.Context, o Options) (*Authenticator, error) {
	var errs []error
	if o.Issuer == "" && o.JWKSURL == "" && len(o.TokenHashes) == 0 {
		errs = append(errs, fmt.Errorf("%s: none of issuer, jwks_url or token_hashes is set: nothing could authenticate", fieldPrefix))
	}
	if o.Issuer != "" {
		if err := checkURL(o.Issuer); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", fieldIssuer, err))
		}
	}
	if o.JWKSURL != "" {
		if err := checkURL(o.JWKSURL); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", fieldJWKSURL, err))
		}
	}
	jwt := o.Issuer != "" || o.JWKSURL != ""
	if !jwt {
		if len(o.Audience) > 0 {
			errs = append(errs, fmt.Errorf("%s: set without issuer or jwks_url", fieldAudience))
		}
		if o.TokenUse != "" {
			errs = append(errs, fmt.Errorf("%s: set without issuer or jwks_url", fieldTokenUse))
		}
		if len(o.Owners) > 0 {
			errs = append(errs, fmt.Errorf("%s: set without issuer or jwks_url", fieldOwners))
		}
	}
	errs = append(errs, checkNonEmpty(fieldAudience, o.Audience), checkNonEmpty(fieldOwners, o.Owners))
	if strings.TrimSpace(o.TokenUse) != o.TokenUse {
		errs = append(errs, fmt.Errorf("%s: %q has surrounding spaces", fieldTokenUse, o.TokenUse))
	}
	hashes := make([][sha256.Size]byte, 0, len(o.TokenHashes))
	for i, h := range o.TokenHashes {
		b, err := parseHash(h)
		if err != nil {
			// The value is a hash, not a secret, but keep it out of
			// messages all the same: a token pasted by mistake would be.
			errs = append(errs, fmt.Errorf("%s[%d]: %w", fieldTokenHashes, i, err))
			continue
		}
		hashes = append(hashes, b)
	}
	if o.Leeway < 0 {
		errs = append(errs, fmt.Errorf("%s: %s is negative", fieldLeeway, o.Leeway))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	a := &Authenticator{
		issuer:   o.Issuer,
		audience: o.Audience,
		tokenUse: o.TokenUse,
		owners:   o.Owners,
		hashes:   hashes,
		leeway:   o.Leeway,
		now:      o.Now,
		log:      o.Logger,
	}
	if a.leeway == 0 {
		a.leeway = defaultLeeway
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("component", "admin_auth")
	if err := a.initMetrics(o.Registry); err != nil {
		return nil, fmt.Errorf("%s: metrics: %w", fieldPrefix, err)
	}
	if jwt {
		client := o.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: defaultHTTPTimeout}
		}
		a.keys = &keySet{
			ctx:             ctx,
			client:          client,
			log:             a.log,
			issuer:          o.Issuer,
			jwksURL:         o.JWKSURL,
			fixedJWKS:       o.JWKSURL != "",
			refetchInterval: defaultRefetchInterval,
			maxAge:          defaultMaxKeyAge,
			sem:             make(chan struct{}, 1),
		}
		for _, u := range []string{o.Issuer, o.JWKSURL} {
			if strings.HasPrefix(strings.ToLower(u), "http://") {
				a.log.Warn("admin auth URL is not https; keys fetched over it can be forged in transit", "url", u)
			}
		}
	}
	return a, nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", s, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q holds credentials", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q has a query or fragment", s)
	}
	return nil
}

func checkNonEmpty(field string, values []string) error {
	var errs []error
	for i, v := range values {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("%s[%d]: empty", field, i))
		} else if strings.TrimSpace(v) != v {
			errs = append(errs, fmt.Errorf("%s[%d]: %q has surrounding spaces", field, i, v))
		}
	}
	return errors.Join(errs...)
}

const hashPrefix = "sha256:"

func parseHash(h string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	hexPart, ok := strings.CutPrefix(h, hashPrefix)
	if !ok {
		return out, errors.New(`not of the form "sha256:<64 hex digits>" (make one with furrow admin hash-token)`)
	}
	if len(hexPart) != 2*sha256.Size {
		return out, fmt.Errorf("has %d hex digits after sha256:, want %d", len(hexPart), 2*sha256.Size)
	}
	if _, err := hex.Decode(out[:], []byte(hexPart)); err != nil {
		return out, errors.New("is not hexadecimal after sha256:")
	}
	return out, nil
}

func (a *Authenticator) initMetrics(reg prometheus.Registerer) error {
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "furrow_admin_auth_failures_total",
		Help: "Admin API requests refused, by reason.",
	}, []string{"reason"})
	success := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "furrow_admin_auth_success_total",
		Help: "Admin API requests authenticated, by method (jwt or token).",
	}, []string{"method"})
	if reg != nil {
		var err error
		if failures, err = register(reg, failures); err != nil {
			return err
		}
		if success, err = register(reg, success); err != nil {
			return err
		}
	}
	for r := range reasonText {
		failures.WithLabelValues(r)
	}
	success.WithLabelValues(MethodJWT)
	success.WithLabelValues(MethodToken)
	a.failures, a.success = failures, success
	return nil
}

// register registers c, or reuses the collector already registered under
// the same name (a second Authenticator on the same registry, after a
// configuration reload say).
func register(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	return nil, err
}

// HashToken returns "sha256:<hex>" of token, the form TokenHashes holds.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hashPrefix + hex.EncodeToString(sum[:])
}

// Check authenticates r from its Authorization: Bearer header. On failure
// the error is an *Error carrying the HTTP status (401, or 403 for a valid
// JWT of a non-owner) and the reason label; it is counted in the metrics.
// On success the method is counted.
func (a *Authenticator) Check(r *http.Request) (Principal, error) {
	p, err := a.check(r)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = fail(ReasonBadToken, "%v", err)
			err = e
		}
		a.failures.WithLabelValues(e.Reason).Inc()
		a.log.Debug("admin request refused", "reason", e.Reason, "detail", e.detail, "remote", r.RemoteAddr, "path", r.URL.Path)
		return Principal{}, err
	}
	a.success.WithLabelValues(p.Method).Inc()
	return p, nil
}

func (a *Authenticator) check(r *http.Request) (Principal, error) {
	token, err := bearerToken(r.Header)
	if err != nil {
		return Principal{}, err
	}
	if len(a.hashes) > 0 {
		sum := sha256.Sum256([]byte(token))
		match := 0
		for i := range a.hashes {
			// Compare with every hash, so that timing tells nothing of
			// which (or whether one) matched.
			match |= subtle.ConstantTimeCompare(sum[:], a.hashes[i][:])
		}
		if match == 1 {
			return Principal{Subject: "token:" + hex.EncodeToString(sum[:6]), Method: MethodToken}, nil
		}
	}
	if a.keys == nil {
		return Principal{}, fail(ReasonBadToken, "no static token matches")
	}
	return a.verifyJWT(r.Context(), token)
}

// bearerToken extracts the token of the single "Authorization: Bearer"
// header in h.
func bearerToken(h http.Header) (string, error) {
	values := h.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", fail(ReasonMissing, "")
	case len(values) > 1:
		return "", fail(ReasonMalformed, "%d Authorization headers", len(values))
	}
	v := strings.TrimSpace(values[0])
	if v == "" {
		return "", fail(ReasonMissing, "")
	}
	scheme, token, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "bearer") {
		return "", fail(ReasonMalformed, "scheme is not Bearer")
	}
	token = strings.TrimLeft(token, " ")
	if token == "" {
		return "", fail(ReasonMalformed, "no token after Bearer")
	}
	if len(token) > maxTokenLen {
		return "", fail(ReasonMalformed, "token of %d bytes exceeds %d", len(token), maxTokenLen)
	}
	if !isToken68(token) {
		return "", fail(ReasonMalformed, "token holds characters outside RFC 6750's b64token")
	}
	return token, nil
}

// isToken68 reports whether s is a b64token (RFC 6750 section 2.1):
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		switch c {
		case '-', '.', '_', '~', '+', '/':
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

type principalKey struct{}

// FromContext returns the Principal that Middleware stored in ctx.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Middleware serves next only to authenticated requests, with the
// Principal in the request's context (see FromContext). Other requests get
// 401 or 403, a WWW-Authenticate: Bearer realm="furrow" challenge, with
// error="invalid_token" when a bearer token was given and refused (not for
// a missing or malformed header) and error="insufficient_scope" on 403,
// and a small JSON body {"error":"..."} stating the reason without echoing
// the credential.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.Check(r)
		if err != nil {
			writeError(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func writeError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = fail(ReasonBadToken, "")
	}
	h := w.Header()
	switch {
	case e.Status == http.StatusForbidden:
		h.Set("WWW-Authenticate", `Bearer realm="furrow", error="insufficient_scope"`)
	case e.Reason == ReasonMissing || e.Reason == ReasonMalformed:
		h.Set("WWW-Authenticate", `Bearer realm="furrow"`)
	default:
		h.Set("WWW-Authenticate", `Bearer realm="furrow", error="invalid_token"`)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	msg, ok := reasonText[e.Reason]
	if !ok {
		msg = reasonText[ReasonBadToken]
	}
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	_, _ = w.Write(append(body, '\n'))
}
