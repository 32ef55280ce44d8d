package tlsx

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// fileSource serves a certificate/key pair read from PEM files and reloads it
// when the files change.
type fileSource struct {
	p                 *Provider
	certFile, keyFile string
	interval          time.Duration

	cur       atomic.Pointer[tls.Certificate]
	nextCheck atomic.Int64 // UnixNano; a handshake after it checks the files

	mu   sync.Mutex // one check at a time; guards the fields below
	seen [2]fileStamp
	name string // expiry metric label of cur
}

// fileStamp identifies a version of a file well enough to notice a rewrite.
type fileStamp struct {
	size    int64
	modTime time.Time
}

// missingStamps stands for "a file could not be stat'ed".
var missingStamps = [2]fileStamp{{size: -1}, {size: -1}}

func stampOf(file string) (fileStamp, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime()}, nil
}

func newFileSource(p *Provider, certFile, keyFile string, interval time.Duration) (*fileSource, error) {
	fs := &fileSource{p: p, certFile: certFile, keyFile: keyFile, interval: interval}
	stamps, err := fs.stamps()
	if err == nil {
		var cert *tls.Certificate
		if cert, err = fs.load(); err == nil {
			fs.seen = stamps
			fs.install(cert)
			fs.nextCheck.Store(time.Now().Add(interval).UnixNano())
			return fs, nil
		}
	}
	return nil, err
}

func (fs *fileSource) stamps() ([2]fileStamp, error) {
	var s [2]fileStamp
	var err error
	if s[0], err = stampOf(fs.certFile); err != nil {
		return s, fmt.Errorf("tls.cert_file: %w", err)
	}
	if s[1], err = stampOf(fs.keyFile); err != nil {
		return s, fmt.Errorf("tls.key_file: %w", err)
	}
	return s, nil
}

// load reads and checks the pair.
func (fs *fileSource) load() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(fs.certFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file: %w", err)
	}
	keyPEM, err := os.ReadFile(fs.keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.key_file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file %s and tls.key_file %s: %w", fs.certFile, fs.keyFile, err)
	}
	if cert.Leaf == nil {
		return nil, fmt.Errorf("tls.cert_file %s: no leaf certificate", fs.certFile)
	}
	return &cert, nil
}

// install puts cert in service and updates its expiry metric. fs.mu is held
// (or fs is not shared yet).
func (fs *fileSource) install(cert *tls.Certificate) {
	fs.cur.Store(cert)
	name := certName(cert.Leaf, fs.certFile)
	if fs.name != "" && fs.name != name {
		fs.p.metrics.expiry.DeleteLabelValues(fs.name)
	}
	fs.name = name
	fs.p.metrics.expiry.WithLabelValues(name).Set(float64(cert.Leaf.NotAfter.Unix()))
}

// get returns the certificate in service, first checking the files when the
// interval has passed. Only one handshake checks; the others meanwhile get the
// current certificate without waiting.
func (fs *fileSource) get() *tls.Certificate {
	if time.Now().UnixNano() >= fs.nextCheck.Load() && fs.mu.TryLock() {
		fs.check()
		fs.mu.Unlock()
	}
	return fs.cur.Load()
}

// check reloads the pair if either file changed. fs.mu is held.
func (fs *fileSource) check() {
	now := time.Now()
	if now.UnixNano() < fs.nextCheck.Load() {
		return // another handshake checked meanwhile
	}
	fs.nextCheck.Store(now.Add(fs.interval).UnixNano())
	stamps, err := fs.stamps()
	if err == nil && stamps == fs.seen {
		return
	}
	if err == nil {
		// Remember the new stamps even if the pair fails to load: it is
		// tried (and its error counted) again only when the files change.
		fs.seen = stamps
		var cert *tls.Certificate
		if cert, err = fs.load(); err == nil {
			fs.install(cert)
			fs.p.log.Info("reloaded TLS certificate", "cert_file", fs.certFile,
				"name", fs.name, "not_after", cert.Leaf.NotAfter)
			return
		}
	} else {
		// A missing file (deleted, or mid-rename): reported once; the pair
		// is read again once the file is back.
		if fs.seen == missingStamps {
			return
		}
		fs.seen = missingStamps
	}
	fs.p.metrics.reloadErrors.Inc()
	fs.p.log.Error("reloading TLS certificate failed, keeping the previous one",
		"cert_file", fs.certFile, "key_file", fs.keyFile, "error", err)
}
