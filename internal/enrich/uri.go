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
	if p, ok := explodePlainURI(raw); ok {
		return p, true
	}
	return parseURI(raw)
}

// URL bytes explodePlainURI takes as they are, by part: each set leaves
// out what net/url would escape, reject or read another way there.
const (
	alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	// plainPath is the unreserved bytes and the sub-delimiters net/url
	// leaves unescaped in a path.
	plainPath = alnum + "-._~/$&+,:;=@"
)

var (
	hostBytes     = byteSet(alnum + ".-")
	pathBytes     = byteSet(plainPath)
	queryBytes    = byteSet(plainPath + "!'()*?[]")
	fragmentBytes = byteSet(plainPath + "?")
)

func byteSet(s string) (set [256]bool) {
	for i := range len(s) {
		set[s[i]] = true
	}
	return set
}

// explodePlainURI is explodeURI for the URLs trackers send most: http or
// https in lower case, a host name, maybe a port, and a path, query and
// fragment of plain bytes and valid percent escapes. For those it gives
// what net/url does, without parsing into a url.URL (FuzzExplodeURI
// checks that); for any other URL it returns false.
func explodePlainURI(s string) (uriParts, bool) {
	var p uriParts
	switch {
	case strings.HasPrefix(s, "https://"):
		p.scheme, p.port, s = "https", "443", s[len("https://"):]
	case strings.HasPrefix(s, "http://"):
		p.scheme, p.port, s = "http", "80", s[len("http://"):]
	default:
		return uriParts{}, false
	}
	i := 0
	for i < len(s) && hostBytes[s[i]] {
		i++
	}
	if i == 0 {
		return uriParts{}, false
	}
	p.host, s = s[:i], s[i:]
	if s != "" && s[0] == ':' {
		i = 1
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 1 || i > 6 {
			return uriParts{}, false
		}
		if n, _ := strconv.Atoi(s[1:i]); n > 65535 {
			return uriParts{}, false
		}
		p.port, s = s[1:i], s[i:]
	}
	var ok bool
	if p.path, s, ok = plainPart(s, '/', '?', &pathBytes); !ok {
		return uriParts{}, false
	}
	if p.query, s, ok = plainPart(s, '?', '#', &queryBytes); !ok {
		return uriParts{}, false
	}
	if p.fragment, s, ok = plainPart(s, '#', 0, &fragmentBytes); !ok || s != "" {
		return uriParts{}, false
	}
	if p.query != "" {
		p.query = p.query[1:]
	}
	if p.fragment != "" {
		p.fragment = p.fragment[1:]
	}
	return p, true
}

// plainPart takes the part of s that starts with first, if s does, up to
// the byte end or '#', whichever comes first. Its bytes after first must
// be in set or make valid percent escapes.
func plainPart(s string, first, end byte, set *[256]bool) (part, rest string, ok bool) {
	if s == "" || s[0] != first {
		return "", s, true
	}
	i := 1
	for ; i < len(s); i++ {
		c := s[i]
		if c == end || c == '#' {
			break
		}
		if set[c] {
			continue
		}
		if c != '%' || i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", s, false
		}
		i += 2
	}
	return s[:i], s[i:], true
}

// parseURI is explodeURI through net/url.
func parseURI(raw string) (uriParts, bool) {
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
