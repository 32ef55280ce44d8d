package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	_ "crypto/sha256" // SHA-256 for RS256, PS256, ES256
	_ "crypto/sha512" // SHA-384 and SHA-512 for RS384, RS512, ES384
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"
)

type sigKind int

const (
	sigPKCS1v15 sigKind = iota
	sigPSS
	sigECDSA
)

// algorithm is a JWS signature algorithm this package accepts.
type algorithm struct {
	hash  crypto.Hash
	kind  sigKind
	curve elliptic.Curve // sigECDSA only
}

// algorithms are the only JWS algorithms accepted. Symmetric (HS*) and
// "none" are absent on purpose: a public key must never serve as an HMAC
// secret.
var algorithms = map[string]algorithm{
	"RS256": {hash: crypto.SHA256, kind: sigPKCS1v15},
	"RS384": {hash: crypto.SHA384, kind: sigPKCS1v15},
	"RS512": {hash: crypto.SHA512, kind: sigPKCS1v15},
	"PS256": {hash: crypto.SHA256, kind: sigPSS},
	"ES256": {hash: crypto.SHA256, kind: sigECDSA, curve: elliptic.P256()},
	"ES384": {hash: crypto.SHA384, kind: sigECDSA, curve: elliptic.P384()},
}

// fits reports whether key k may verify signatures of alg: the key type
// must match the algorithm, and so must the JWK's own alg when it has one.
func (alg algorithm) fits(name string, k *jwk) bool {
	if k.alg != "" && k.alg != name {
		return false
	}
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		return alg.kind == sigPKCS1v15 || alg.kind == sigPSS
	case *ecdsa.PublicKey:
		return alg.kind == sigECDSA && pub.Curve == alg.curve
	}
	return false
}

// verify checks sig over signed with pub under alg.
func (alg algorithm) verify(pub crypto.PublicKey, signed, sig []byte) bool {
	h := alg.hash.New()
	h.Write(signed)
	digest := h.Sum(nil)
	switch alg.kind {
	case sigPKCS1v15:
		k, ok := pub.(*rsa.PublicKey)
		return ok && rsa.VerifyPKCS1v15(k, alg.hash, digest, sig) == nil
	case sigPSS:
		k, ok := pub.(*rsa.PublicKey)
		// RFC 7518 fixes the salt at the hash's length; accepting any
		// length interoperates with signers that use the maximum.
		return ok && rsa.VerifyPSS(k, alg.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
	case sigECDSA:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve != alg.curve {
			return false
		}
		size := (alg.curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}

var b64 = base64.RawURLEncoding.Strict()

// verifyJWT checks a compact JWS: algorithm, signature against the JWKS,
// then the registered and Cognito claims, then ownership.
func (a *Authenticator) verifyJWT(ctx context.Context, token string) (Principal, error) {
	if strings.Count(token, ".") != 2 {
		return Principal{}, fail(ReasonBadToken, "not a static token nor a JWT")
	}
	h64, rest, _ := strings.Cut(token, ".")
	c64, s64, _ := strings.Cut(rest, ".")
	header, err := decodeObject(h64)
	if err != nil {
		return Principal{}, fail(ReasonBadToken, "header: %v", err)
	}
	algName, err := stringMember(header, "alg")
	if err != nil || algName == "" {
		return Principal{}, fail(ReasonBadToken, "header: alg missing or not a string")
	}
	alg, ok := algorithms[algName]
	if !ok {
		return Principal{}, fail(ReasonAlg, "alg %s not accepted", clip(algName))
	}
	if _, ok := header["crit"]; ok {
		return Principal{}, fail(ReasonBadToken, "header: crit extensions not understood")
	}
	kid, err := stringMember(header, "kid")
	if err != nil {
		return Principal{}, fail(ReasonBadToken, "header: kid not a string")
	}
	sig, err := b64.DecodeString(s64)
	if err != nil || len(sig) == 0 {
		return Principal{}, fail(ReasonBadSignature, "signature not base64url")
	}

	candidates, err := a.keys.lookup(ctx, kid, algName, alg)
	if err != nil {
		return Principal{}, err
	}
	signed := token[:len(h64)+1+len(c64)]
	verified := false
	for _, k := range candidates {
		if alg.verify(k.pub, []byte(signed), sig) {
			verified = true
			break
		}
	}
	if !verified {
		return Principal{}, fail(ReasonBadSignature, "%s signature does not verify (kid %q)", algName, clip(kid))
	}

	// The signature holds: the claims are the issuer's.
	claims, err := decodeObject(c64)
	if err != nil {
		return Principal{}, fail(ReasonBadToken, "claims: %v", err)
	}
	return a.checkClaims(claims)
}

func (a *Authenticator) checkClaims(claims map[string]json.RawMessage) (Principal, error) {
	now := a.now()
	exp, ok, err := dateMember(claims, "exp")
	if err != nil {
		return Principal{}, fail(ReasonBadToken, "exp: %v", err)
	}
	if !ok {
		return Principal{}, fail(ReasonBadToken, "exp missing")
	}
	if !now.Before(exp.Add(a.leeway)) {
		return Principal{}, fail(ReasonExpired, "expired at %s", exp.UTC().Format(time.RFC3339))
	}
	for _, name := range []string{"nbf", "iat"} {
		t, ok, err := dateMember(claims, name)
		if err != nil {
			return Principal{}, fail(ReasonBadToken, "%s: %v", name, err)
		}
		if ok && now.Add(a.leeway).Before(t) {
			return Principal{}, fail(ReasonNotYetValid, "%s %s is in the future", name, t.UTC().Format(time.RFC3339))
		}
	}

	iss, err := stringMember(claims, "iss")
	if err != nil {
		return Principal{}, fail(ReasonBadToken, "iss not a string")
	}
	if a.issuer != "" && iss != a.issuer {
		return Principal{}, fail(ReasonIssuer, "iss %q is not %q", clip(iss), a.issuer)
	}

	aud, audPresent, err := audienceMember(claims)
	if err != nil {
		return Principal{}, fail(ReasonBadToken, "aud: %v", err)
	}
	clientID, err := stringMember(claims, "client_id")
	if err != nil {
		return Principal{}, fail(ReasonBadToken, "client_id not a string")
	}
	if len(a.audience) > 0 {
		ok := false
		if audPresent {
			ok = slices.ContainsFunc(aud, func(s string) bool { return slices.Contains(a.audience, s) })
		} else {
			// Cognito access tokens name their app client in client_id
			// instead of aud. A token that has aud is judged by aud alone,
			// so that one meant for another API is never accepted through
			// its client.
			ok = clientID != "" && slices.Contains(a.audience, clientID)
		}
		if !ok {
			return Principal{}, fail(ReasonAudience, "neither aud nor client_id is an accepted audience")
		}
	}

	tokenUse, err := stringMember(claims, "token_use")
	if err != nil {
		return Principal{}, fail(ReasonBadToken, "token_use not a string")
	}
	if a.tokenUse != "" && tokenUse != a.tokenUse {
		return Principal{}, fail(ReasonTokenUse, "token_use %q is not %q", clip(tokenUse), a.tokenUse)
	}

	sub, err := stringMember(claims, "sub")
	if err != nil {
		return Principal{}, fail(ReasonBadToken, "sub not a string")
	}
	username, err := stringMember(claims, "username")
	if err != nil {
		return Principal{}, fail(ReasonBadToken, "username not a string")
	}
	subject := sub
	if subject == "" {
		subject = username
	}
	if subject == "" {
		return Principal{}, fail(ReasonBadToken, "neither sub nor username is set")
	}
	if len(a.owners) > 0 && !(sub != "" && slices.Contains(a.owners, sub)) && !(username != "" && slices.Contains(a.owners, username)) {
		return Principal{}, fail(ReasonForbidden, "subject %q is not an owner", clip(subject))
	}
	return Principal{Subject: subject, Method: MethodJWT}, nil
}

// decodeObject decodes a base64url JSON object. Member names are matched
// exactly, unlike encoding/json's struct decoding, which folds case.
func decodeObject(s string) (map[string]json.RawMessage, error) {
	raw, err := b64.DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64url")
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// stringMember returns m[name] as a string, "" when absent or null.
func stringMember(m map[string]json.RawMessage, name string) (string, error) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s is not a string", name)
	}
	return s, nil
}

// maxDate bounds NumericDate values, far beyond any real token's (the year
// 33658), so that conversion to time.Time cannot overflow.
const maxDate = 1e12

// dateMember returns the NumericDate m[name] (seconds since the epoch,
// possibly fractional) and whether it is present.
func dateMember(m map[string]json.RawMessage, name string) (time.Time, bool, error) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		return time.Time{}, false, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return time.Time{}, true, errors.New("not a number")
	}
	if math.IsNaN(f) || f < 0 || f > maxDate {
		return time.Time{}, true, errors.New("out of range")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// audienceMember returns aud, a string or an array of strings, and whether
// it is present.
func audienceMember(m map[string]json.RawMessage) ([]string, bool, error) {
	raw, ok := m["aud"]
	if !ok || string(raw) == "null" {
		return nil, false, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, true, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, true, errors.New("not a string or an array of strings")
	}
	return many, true, nil
}

// clip shortens token-supplied text for logs.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
