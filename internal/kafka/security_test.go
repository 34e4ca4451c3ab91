package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strand-data/strand/internal/auth"
	"github.com/strand-data/strand/internal/auth/authtest"
)

// principalHandler answers Metadata with the request's principal as the cluster id, so a
// client can see who the server thinks it is.
type principalHandler struct{}

func (principalHandler) SupportedVersions() []kmsg.ApiVersionsResponseApiKey {
	return []kmsg.ApiVersionsResponseApiKey{{ApiKey: 18, MinVersion: 0, MaxVersion: 3}, {ApiKey: 3, MinVersion: 0, MaxVersion: 12}}
}

func (h principalHandler) Handle(ctx context.Context, req *Request) Response {
	switch r := req.Body.(type) {
	case *kmsg.ApiVersionsRequest:
		resp := r.ResponseKind().(*kmsg.ApiVersionsResponse)
		resp.ApiKeys = h.SupportedVersions()
		return resp
	case *kmsg.MetadataRequest:
		resp := r.ResponseKind().(*kmsg.MetadataResponse)
		p := req.Conn.Principal
		resp.ClusterID = &p
		return resp
	}
	return CloseConnection
}

func startSecureServer(t *testing.T, sec Security) *Server {
	t.Helper()
	s := NewServer(Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: NewMetrics(prometheus.NewRegistry()), Security: sec}, principalHandler{})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func principalOf(t *testing.T, s *Server, opts ...kgo.Opt) (string, error) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.Addr().String()), kgo.RequestRetries(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return "", err
	}
	return *resp.ClusterID, nil
}

func TestPrincipalFromClientCertificate(t *testing.T) {
	ca := authtest.NewCA(t, "srv")
	server := ca.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "localhost"}, Server: true, FileName: "server"})
	clients := authtest.NewCA(t, "clients")
	st, err := auth.NewServerTLS(auth.TLSFiles{CertFile: server.CertFile, KeyFile: server.KeyFile, ClientCAFile: clients.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := auth.ParsePrincipalRules("RULE:^CN=(.*?),OU=apps.*$/$1/U, DEFAULT")
	s := startSecureServer(t, Security{TLS: st, PrincipalRules: rules, NodePrincipal: "User:strand-node-1"})
	for _, tc := range []struct {
		subject pkix.Name
		want    string
	}{
		{pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"apps"}}, "User:ALICE"},
		{pkix.Name{CommonName: "bob", Organization: []string{"acme"}}, "User:CN=bob,O=acme"},
	} {
		c := clients.Issue(t, authtest.Options{Subject: tc.subject, Client: true})
		got, err := principalOf(t, s, kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{*c.TLS}}))
		if err != nil || got != tc.want {
			t.Errorf("%v: principal %q, %v; want %q", tc.subject, got, err, tc.want)
		}
	}
	// The node's own clients trust exactly its certificate and present it.
	if got, err := principalOf(t, s, kgo.DialTLSConfig(st.SelfClientConfig())); err != nil || got != "User:strand-node-1" {
		t.Errorf("node's own client: %q, %v", got, err)
	}
	// And they refuse a listener serving another certificate.
	other := ca.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "localhost"}, Server: true, FileName: "other"})
	ost, _ := auth.NewServerTLS(auth.TLSFiles{CertFile: other.CertFile, KeyFile: other.KeyFile})
	if _, err := principalOf(t, startSecureServer(t, Security{TLS: ost}), kgo.DialTLSConfig(st.SelfClientConfig())); err == nil {
		t.Error("the node's client trusted another server")
	}
}

// TestReauthentication: with connections.max.reauth.ms a session expires; franz-go
// re-authenticates on the same connection (KIP-368) and goes on, while a request on an
// expired session closes the connection.
func TestReauthentication(t *testing.T) {
	cred, err := auth.ScramSHA256.NewScramCredential("pw-reauth", auth.MinScramIterations)
	if err != nil {
		t.Fatal(err)
	}
	var lookups atomic.Int32
	s := startSecureServer(t, Security{SASL: true, Mechanisms: []string{"SCRAM-SHA-256"}, MaxReauth: 1500 * time.Millisecond,
		Credentials: func(user string, m auth.ScramMechanism) (auth.ScramCredential, bool) {
			lookups.Add(1)
			return cred, user == "carol" && m == auth.ScramSHA256
		}})
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr().String()), kgo.SASL(scram.Auth{User: "carol", Pass: "pw-reauth"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 4; i++ {
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil || *resp.ClusterID != "User:carol" {
			t.Fatalf("request %d: %v", i, err)
		}
		time.Sleep(700 * time.Millisecond) // past the session's lifetime over the loop
	}
	t.Logf("connections %d, authentications %d", s.nextID.Load(), lookups.Load())
	if n := lookups.Load(); n < 2 || s.nextID.Load() != 1 {
		t.Fatalf("%d authentications on %d connections in 2.8s of 1.5s sessions; want several on one", n, s.nextID.Load())
	}

	// A client that does not re-authenticate is cut off at its next request.
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = "SCRAM-SHA-256"
	c.Write(frame(17, 1, 1, hs))
	readResponse(t, c)
	session, msg, _ := scram.Auth{User: "carol", Pass: "pw-reauth"}.AsSha256Mechanism().Authenticate(ctx, "")
	var lifetime int64
	for corr, done := int32(2), false; !done; corr++ {
		a := kmsg.NewPtrSASLAuthenticateRequest()
		a.SASLAuthBytes = msg
		c.Write(frame(36, 1, corr, a))
		_, body := readResponse(t, c)
		resp := kmsg.NewPtrSASLAuthenticateResponse()
		resp.Version = 1
		if err := resp.ReadFrom(body); err != nil || resp.ErrorCode != 0 {
			t.Fatalf("authenticate: %v %+v", err, resp)
		}
		lifetime = resp.SessionLifetimeMillis
		if done, msg, err = session.Challenge(resp.SASLAuthBytes); err != nil {
			t.Fatal(err)
		}
	}
	if lifetime <= 0 || lifetime > 1500 {
		t.Fatalf("session lifetime %d ms, want (0, 1500]", lifetime)
	}
	time.Sleep(1600 * time.Millisecond) // let the session expire
	c.Write(frame(3, 4, 9, kmsg.NewPtrMetadataRequest()))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 4)); err == nil {
		t.Fatal("an expired session was served")
	}
}

// TestUnauthenticatedConnectionsTimeOut: a client may not sit on a SASL listener without
// authenticating for longer than the authentication timeout.
func TestUnauthenticatedConnectionsTimeOut(t *testing.T) {
	s := startSecureServer(t, Security{SASL: true, Mechanisms: []string{"SCRAM-SHA-256"}, AuthTimeout: 300 * time.Millisecond,
		Credentials: func(string, auth.ScramMechanism) (auth.ScramCredential, bool) { return auth.ScramCredential{}, false }})
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(frame(18, 0, 1, kmsg.NewPtrApiVersionsRequest()))
	readResponse(t, c)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err == nil {
		t.Fatal("the server sent something unasked")
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Fatalf("an unauthenticated connection stayed open %v", waited)
	}
}
