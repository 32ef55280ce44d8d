package enrich

import (
	"net/url"
	"strconv"
	"strings"
)

type uriParts struct {
	scheme, host, port, path, query, fragment string
}

// explodeURI splits a page or referrer URL into its columns. Path, query
// and fragment stay percent-encoded. A missing port is 443 for https and
// 80 otherwise. URLs browsers send unencoded (spaces, pipes, braces...)
// are encoded first.
func explodeURI(raw string) (uriParts, bool) {
	u, err := url.Parse(encodeUnsafe(raw))
	if err != nil {
		return uriParts{}, false
	}
	if u.Scheme == "" || u.Host == "" {
		return uriParts{}, false
	}
	p := uriParts{
		scheme:   strings.ToLower(u.Scheme),
		host:     u.Hostname(),
		path:     u.EscapedPath(),
		query:    u.RawQuery,
		fragment: u.EscapedFragment(),
	}
	switch port := u.Port(); {
	case port != "":
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return uriParts{}, false
		}
		p.port = port
	case p.scheme == "https":
		p.port = "443"
	default:
		p.port = "80"
	}
	return p, true
}

// encodeUnsafe percent-encodes bytes that may not appear in a URI, leaving
// existing escapes and reserved characters alone.
func encodeUnsafe(s string) string {
	const hex = "0123456789ABCDEF"
	safe := true
	for i := 0; i < len(s) && safe; i++ {
		c := s[i]
		safe = c > ' ' && c < 0x7f && strings.IndexByte(`"<>\^`+"`{|}%", c) < 0
	}
	if safe {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(c)
		case c <= ' ' || c >= 0x7f || strings.IndexByte(`"<>\^`+"`{|}%", c) >= 0:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	_, ok := unhex(c)
	return ok
}
