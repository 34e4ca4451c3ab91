package auth

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"os"
	"testing"
	"time"

	"github.com/strand-data/strand/internal/auth/authtest"
)

func TestCertReloaderPicksUpNewFiles(t *testing.T) {
	ca := authtest.NewCA(t, "reload")
	first := ca.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "first"}, Server: true, FileName: "first"})
	second := ca.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "second"}, Server: true, FileName: "second"})
	r, err := NewCertReloader(first.CertFile, first.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.now = func() time.Time { return now }
	if got := r.Certificate().Leaf.Subject.CommonName; got != "first" {
		t.Fatalf("serving %q", got)
	}
	replace := func(src *authtest.Cert, mtime time.Time) {
		for _, p := range [][2]string{{src.CertFile, first.CertFile}, {src.KeyFile, first.KeyFile}} {
			b, err := os.ReadFile(p[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p[1], b, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(p[1], mtime, mtime)
		}
	}
	replace(second, now.Add(time.Minute))
	// Within a second of the last look, the files are not looked at again.
	if got := r.Certificate().Leaf.Subject.CommonName; got != "first" {
		t.Fatalf("reloaded within the check interval: %q", got)
	}
	now = now.Add(1100 * time.Millisecond)
	if got := r.Certificate().Leaf.Subject.CommonName; got != "second" {
		t.Fatalf("after rotation serving %q", got)
	}
	// A half-written rotation (a key that does not match) keeps the old pair in service.
	os.WriteFile(first.KeyFile, []byte("not a key"), 0o600)
	os.Chtimes(first.KeyFile, now.Add(2*time.Minute), now.Add(2*time.Minute))
	now = now.Add(1100 * time.Millisecond)
	if got := r.Certificate().Leaf.Subject.CommonName; got != "second" || r.LastError() == nil {
		t.Fatalf("after a bad rotation serving %q, error %v", got, r.LastError())
	}
}

func TestServerTLSRefusesOldVersionsAndStrangers(t *testing.T) {
	ca := authtest.NewCA(t, "srv")
	server := ca.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "localhost"}, Server: true, FileName: "server"})
	clients := authtest.NewCA(t, "clients")
	st, err := NewServerTLS(TLSFiles{CertFile: server.CertFile, KeyFile: server.KeyFile, ClientCAFile: clients.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	if st.Config.MinVersion < tls.VersionTLS12 {
		t.Fatalf("min version %x", st.Config.MinVersion)
	}
	good := clients.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "a"}, Client: true})
	expired := clients.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "b"}, Client: true, Expired: true})
	serverOnly := clients.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "c"}, Server: true})
	stranger := authtest.NewCA(t, "x").Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "d"}, Client: true})
	for _, tc := range []struct {
		name string
		der  [][]byte
		ok   bool
	}{
		{"signed by the client CA", good.TLS.Certificate, true},
		{"the node's own certificate", [][]byte{server.TLS.Certificate[0]}, true},
		{"expired", expired.TLS.Certificate, false},
		{"no client usage", serverOnly.TLS.Certificate, false},
		{"another CA", stranger.TLS.Certificate, false},
		{"none", nil, false},
		{"garbage", [][]byte{[]byte("garbage")}, false},
	} {
		if err := st.verifyClient(tc.der, nil); (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.name, err)
		}
	}
}
