package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// KafkaTLSFiles are the PEM files of the broker's TLS listener (TLSAddr):
// a throwaway CA, which signed the broker's certificate (for 127.0.0.1
// and localhost) and a client certificate the listener requires.
type KafkaTLSFiles struct {
	CA, ClientCert, ClientKey string
}

// TLSAddr is the host:port of the broker's SSL listener, which requires
// a client certificate signed by TLSFiles().CA.
func (k *KafkaBroker) TLSAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(k.tlsPort))
}

// TLSFiles returns the files a client of TLSAddr needs.
func (k *KafkaBroker) TLSFiles() KafkaTLSFiles {
	return KafkaTLSFiles{CA: k.path("tls/ca.pem"), ClientCert: k.path("tls/client.pem"), ClientKey: k.path("tls/client-key.pem")}
}

// writeTLS makes the CA and the certificates: the broker's keystore
// (its PKCS#8 key and certificate chain in one PEM file, Kafka's PEM
// keystore type) and truststore (the CA), and the client's pair.
func (k *KafkaBroker) writeTLS() {
	k.t.Helper()
	dir := k.path("tls")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		k.t.Fatal(err)
	}
	now := time.Now()
	caKey, caCert, caDER := k.cert(nil, nil, &x509.Certificate{
		Subject: pkix.Name{CommonName: "furrow test Kafka CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)})
	brokerKey, _, brokerDER := k.cert(caKey, caCert, &x509.Certificate{
		Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)})
	clientKey, _, clientDER := k.cert(caKey, caCert, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "furrow"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)})
	block := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	keyPEM := func(key *ecdsa.PrivateKey) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			k.t.Fatal(err)
		}
		return block("PRIVATE KEY", b)
	}
	files := map[string][]byte{
		"ca.pem":         block("CERTIFICATE", caDER),
		"broker.pem":     append(append(keyPEM(brokerKey), block("CERTIFICATE", brokerDER)...), block("CERTIFICATE", caDER)...),
		"client.pem":     block("CERTIFICATE", clientDER),
		"client-key.pem": keyPEM(clientKey),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			k.t.Fatal(err)
		}
	}
}

// cert makes a key and a certificate from tmpl, signed by parent (self
// signed without one).
func (k *KafkaBroker) cert(parentKey *ecdsa.PrivateKey, parent *x509.Certificate, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	k.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		k.t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		k.t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		k.t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		k.t.Fatal(err)
	}
	return key, c, der
}
