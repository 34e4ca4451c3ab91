package auth

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// certCheckInterval bounds how often a handshake looks at the certificate files' mtimes.
const certCheckInterval = time.Second

// CertReloader serves a certificate and key from files, and picks up new files without a
// restart: a handshake checks the files' modification times at most once a second and
// loads them again when either changed. A pair that fails to load keeps the old one in
// service (a rotation writes the two files one after the other).
type CertReloader struct {
	certFile, keyFile string
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	certMod   time.Time
	keyMod    time.Time
	lastCheck time.Time
	loadErr   error
}

// NewCertReloader loads the pair once; an error here stops the start.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile, now: time.Now}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *CertReloader) load() error {
	cs, err := os.Stat(r.certFile)
	if err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	ks, err := os.Stat(r.keyFile)
	if err != nil {
		return fmt.Errorf("tls key: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls key pair %s, %s: %w", r.certFile, r.keyFile, err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	r.cert, r.certMod, r.keyMod = &cert, cs.ModTime(), ks.ModTime()
	return nil
}

// Certificate returns the pair in service, reloading it first if its files changed.
func (r *CertReloader) Certificate() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.lastCheck) < certCheckInterval {
		return r.cert
	}
	r.lastCheck = now
	cs, cerr := os.Stat(r.certFile)
	ks, kerr := os.Stat(r.keyFile)
	if cerr == nil && kerr == nil && (!cs.ModTime().Equal(r.certMod) || !ks.ModTime().Equal(r.keyMod)) {
		old := r.cert
		if err := r.load(); err != nil {
			r.loadErr = err
			r.cert = old
		} else {
			r.loadErr = nil
		}
	}
	return r.cert
}

// LastError is the error of the last failed reload, nil once one succeeds.
func (r *CertReloader) LastError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loadErr
}

// TLSFiles names a listener's certificate files.
type TLSFiles struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, asks every client for a certificate signed by one of its
	// CAs (Kafka's ssl.client.auth=required).
	ClientCAFile string
}

// ServerTLS is a listener's TLS configuration and what it needs to trust its own node.
type ServerTLS struct {
	Config   *tls.Config
	Reloader *CertReloader
	ClientCA *x509.CertPool
}

// NewServerTLS builds the listeners' TLS configuration: TLS 1.2 or later, the certificate
// from the reloader, and with a client CA, mutual TLS. A client that presents the node's
// own certificate is accepted too, so the node's own clients (replica fetchers) can
// connect when the client CA did not sign the server certificate; IsOwnCertificate tells
// such a connection apart.
func NewServerTLS(files TLSFiles) (*ServerTLS, error) {
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, errors.New("TLS needs both a certificate and a key file")
	}
	r, err := NewCertReloader(files.CertFile, files.KeyFile)
	if err != nil {
		return nil, err
	}
	st := &ServerTLS{Reloader: r}
	st.Config = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.Certificate(), nil
		},
	}
	if files.ClientCAFile != "" {
		pem, err := os.ReadFile(files.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls client CA %s: no PEM certificate in it", files.ClientCAFile)
		}
		st.ClientCA = pool
		st.Config.ClientAuth = tls.RequireAnyClientCert
		st.Config.VerifyPeerCertificate = st.verifyClient
	}
	return st, nil
}

// verifyClient checks a client chain against the client CA, as tls.RequireAndVerifyClientCert
// would, and also accepts the node's own certificate.
func (st *ServerTLS) verifyClient(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) == 0 {
		return errors.New("tls: client certificate required")
	}
	if st.IsOwnCertificate(raw[0]) {
		return nil
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, b := range raw {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return fmt.Errorf("tls: bad client certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: st.ClientCA, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return fmt.Errorf("tls: client certificate: %w", err)
	}
	return nil
}

// IsOwnCertificate reports whether der is the certificate this node serves.
func (st *ServerTLS) IsOwnCertificate(der []byte) bool {
	c := st.Reloader.Certificate()
	return c != nil && len(c.Certificate) > 0 && bytes.Equal(c.Certificate[0], der)
}

// SelfClientConfig is the TLS configuration of the node's own clients to its own
// listener: they trust exactly the certificate the node serves (whatever CA signed it and
// whatever name it holds), and present it when the listener asks for a client certificate.
func (st *ServerTLS) SelfClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is VerifyPeerCertificate's: the peer must be this node.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !st.IsOwnCertificate(raw[0]) {
				return errors.New("tls: peer is not this node")
			}
			return nil
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return st.Reloader.Certificate(), nil
		},
	}
}

// HTTPConfig is the HTTP listener's TLS: the same certificate, and no client certificate
// asked for (HTTP authentication comes with the authorizer).
func (st *ServerTLS) HTTPConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: st.Config.GetCertificate}
}
