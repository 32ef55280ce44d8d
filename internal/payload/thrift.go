package payload

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Thrift binary protocol type ids.
const (
	tStop   = 0
	tBool   = 2
	tByte   = 3
	tDouble = 4
	tI16    = 6
	tI32    = 8
	tI64    = 10
	tString = 11
	tStruct = 12
	tMap    = 13
	tSet    = 14
	tList   = 15
)

// maxNesting bounds recursion when skipping unknown nested values.
const maxNesting = 32

// Size returns the number of bytes Marshal will produce.
func (p *CollectorPayload) Size() int {
	n := 1 // stop
	str := func(s string) { n += 3 + 4 + len(s) }
	opt := func(s string) {
		if s != "" {
			str(s)
		}
	}
	str(p.Schema)
	str(p.IPAddress)
	n += 3 + 8
	str(p.Encoding)
	str(p.Collector)
	opt(p.UserAgent)
	opt(p.RefererURI)
	opt(p.Path)
	opt(p.Querystring)
	opt(p.Body)
	if p.Headers != nil {
		n += 3 + 5
		for _, h := range p.Headers {
			n += 4 + len(h)
		}
	}
	opt(p.ContentType)
	opt(p.Hostname)
	opt(p.NetworkUserID)
	return n
}

// Marshal encodes p with the Thrift binary protocol.
func (p *CollectorPayload) Marshal() []byte {
	return p.AppendMarshal(make([]byte, 0, p.Size()))
}

// AppendMarshal appends the Thrift binary encoding of p to b. Fields are
// written in IDL declaration order, as the reference Java serializer does.
func (p *CollectorPayload) AppendMarshal(b []byte) []byte {
	b = appendString(b, fidSchema, p.Schema)
	b = appendString(b, fidIPAddress, p.IPAddress)
	b = appendHeader(b, tI64, fidTimestamp)
	b = binary.BigEndian.AppendUint64(b, uint64(p.Timestamp))
	b = appendString(b, fidEncoding, p.Encoding)
	b = appendString(b, fidCollector, p.Collector)
	b = appendOptString(b, fidUserAgent, p.UserAgent)
	b = appendOptString(b, fidRefererURI, p.RefererURI)
	b = appendOptString(b, fidPath, p.Path)
	b = appendOptString(b, fidQuerystring, p.Querystring)
	b = appendOptString(b, fidBody, p.Body)
	if p.Headers != nil {
		b = appendHeader(b, tList, fidHeaders)
		b = append(b, tString)
		b = binary.BigEndian.AppendUint32(b, uint32(len(p.Headers)))
		for _, h := range p.Headers {
			b = binary.BigEndian.AppendUint32(b, uint32(len(h)))
			b = append(b, h...)
		}
	}
	b = appendOptString(b, fidContentType, p.ContentType)
	b = appendOptString(b, fidHostname, p.Hostname)
	b = appendOptString(b, fidNetworkUserID, p.NetworkUserID)
	return append(b, tStop)
}

func appendHeader(b []byte, typ byte, id int16) []byte {
	b = append(b, typ)
	return binary.BigEndian.AppendUint16(b, uint16(id))
}

func appendString(b []byte, id int16, s string) []byte {
	b = appendHeader(b, tString, id)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendOptString(b []byte, id int16, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(b, id, s)
}

// ErrTruncated is returned when the input ends inside a value.
var ErrTruncated = errors.New("thrift: truncated input")

// Unmarshal decodes a Thrift binary CollectorPayload. Unknown fields are
// skipped, as Thrift readers do; fields with a known id but an unexpected
// wire type are skipped too. It does not check the content of the payload
// (schema, path, ...): that is the enricher's job.
func Unmarshal(data []byte) (*CollectorPayload, error) {
	p := &CollectorPayload{}
	if err := p.Unmarshal(data); err != nil {
		return nil, err
	}
	return p, nil
}

// Unmarshal decodes data into p, overwriting it.
func (p *CollectorPayload) Unmarshal(data []byte) error {
	*p = CollectorPayload{}
	r := reader{b: data}
	for {
		typ, err := r.byte()
		if err != nil {
			return err
		}
		if typ == tStop {
			break
		}
		id, err := r.i16()
		if err != nil {
			return err
		}
		if typ == tString {
			s, err := r.string()
			if err != nil {
				return err
			}
			switch id {
			case fidSchema:
				p.Schema = s
			case fidIPAddress:
				p.IPAddress = s
			case fidEncoding:
				p.Encoding = s
			case fidCollector:
				p.Collector = s
			case fidUserAgent:
				p.UserAgent = s
			case fidRefererURI:
				p.RefererURI = s
			case fidPath:
				p.Path = s
			case fidQuerystring:
				p.Querystring = s
			case fidBody:
				p.Body = s
			case fidContentType:
				p.ContentType = s
			case fidHostname:
				p.Hostname = s
			case fidNetworkUserID:
				p.NetworkUserID = s
			}
			continue
		}
		switch {
		case typ == tI64 && id == fidTimestamp:
			v, err := r.i64()
			if err != nil {
				return err
			}
			p.Timestamp = v
		case typ == tList && id == fidHeaders:
			et, n, err := r.listHeader()
			if err != nil {
				return err
			}
			if et != tString {
				for i := 0; i < n; i++ {
					if err := r.skip(et, 1); err != nil {
						return err
					}
				}
				continue
			}
			p.Headers = make([]string, 0, n)
			for i := 0; i < n; i++ {
				s, err := r.string()
				if err != nil {
					return err
				}
				p.Headers = append(p.Headers, s)
			}
		default:
			if err := r.skip(typ, 0); err != nil {
				return err
			}
		}
	}
	if r.off != len(r.b) {
		return fmt.Errorf("thrift: %d trailing bytes after struct", len(r.b)-r.off)
	}
	return nil
}

type reader struct {
	b   []byte
	off int
	// s is b as a string, made on the first string read: every string
	// field is a substring of it, one allocation per payload instead of
	// one per field.
	s string
}

func (r *reader) need(n int) error {
	if n < 0 || len(r.b)-r.off < n {
		return ErrTruncated
	}
	return nil
}

func (r *reader) byte() (byte, error) {
	if err := r.need(1); err != nil {
		return 0, err
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) i16() (int16, error) {
	if err := r.need(2); err != nil {
		return 0, err
	}
	v := int16(binary.BigEndian.Uint16(r.b[r.off:]))
	r.off += 2
	return v, nil
}

func (r *reader) i32() (int32, error) {
	if err := r.need(4); err != nil {
		return 0, err
	}
	v := int32(binary.BigEndian.Uint32(r.b[r.off:]))
	r.off += 4
	return v, nil
}

func (r *reader) i64() (int64, error) {
	if err := r.need(8); err != nil {
		return 0, err
	}
	v := int64(binary.BigEndian.Uint64(r.b[r.off:]))
	r.off += 8
	return v, nil
}

func (r *reader) length() (int, error) {
	n, err := r.i32()
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("thrift: negative length %d", n)
	}
	if err := r.need(int(n)); err != nil {
		return 0, err
	}
	return int(n), nil
}

func (r *reader) string() (string, error) {
	n, err := r.length()
	if err != nil {
		return "", err
	}
	if r.s == "" {
		r.s = string(r.b)
	}
	s := r.s[r.off : r.off+n]
	r.off += n
	return s, nil
}

// listHeader reads a list or set header. The element count is checked
// against the remaining input (every element takes at least one byte, except
// for bools in some encodings, which still take one here) so a hostile
// header cannot trigger a huge allocation.
func (r *reader) listHeader() (byte, int, error) {
	et, err := r.byte()
	if err != nil {
		return 0, 0, err
	}
	n, err := r.i32()
	if err != nil {
		return 0, 0, err
	}
	if n < 0 || int(n) > len(r.b)-r.off {
		return 0, 0, fmt.Errorf("thrift: bad collection size %d", n)
	}
	return et, int(n), nil
}

func (r *reader) skip(typ byte, depth int) error {
	if depth > maxNesting {
		return errors.New("thrift: nesting too deep")
	}
	switch typ {
	case tBool, tByte, tDouble, tI16, tI32, tI64:
		n := fixedSize(typ)
		if err := r.need(n); err != nil {
			return err
		}
		r.off += n
	case tString:
		n, err := r.length()
		if err != nil {
			return err
		}
		r.off += n
	case tStruct:
		for {
			ft, err := r.byte()
			if err != nil {
				return err
			}
			if ft == tStop {
				return nil
			}
			if _, err := r.i16(); err != nil {
				return err
			}
			if err := r.skip(ft, depth+1); err != nil {
				return err
			}
		}
	case tMap:
		kt, err := r.byte()
		if err != nil {
			return err
		}
		vt, err := r.byte()
		if err != nil {
			return err
		}
		n, err := r.i32()
		if err != nil {
			return err
		}
		if n < 0 || int(n) > len(r.b)-r.off {
			return fmt.Errorf("thrift: bad map size %d", n)
		}
		for i := 0; i < int(n); i++ {
			if err := r.skip(kt, depth+1); err != nil {
				return err
			}
			if err := r.skip(vt, depth+1); err != nil {
				return err
			}
		}
	case tList, tSet:
		et, n, err := r.listHeader()
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := r.skip(et, depth+1); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("thrift: unknown type %d", typ)
	}
	return nil
}

func fixedSize(typ byte) int {
	switch typ {
	case tBool, tByte:
		return 1
	case tI16:
		return 2
	case tI32:
		return 4
	default: // tI64, tDouble
		return 8
	}
}
