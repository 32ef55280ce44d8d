package auth

import (
	"crypto/rand"
	"encoding/base64"
)

// TokenPrefix starts every token NewToken makes, so that leaked tokens are
// recognisable (to secret scanners, say).
const TokenPrefix = "furrow_"

// NewToken returns a new static API token: TokenPrefix and 32 random bytes
// in unpadded base64url. Configure its HashToken, never the token itself.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}
