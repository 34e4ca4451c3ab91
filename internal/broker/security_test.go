package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strand-data/strand/internal/auth"
	"github.com/strand-data/strand/internal/auth/authtest"
)

// logBuffer captures a broker's log lines, to assert that no credential reaches them.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

const testAdminPassword = "admin-pw-Zq81"

// startSecureBroker runs a node with security and returns it, its CA and its log.
func startSecureBroker(t *testing.T, protocol string, edit func(*SecurityConfig)) (*Broker, *authtest.CA, *logBuffer) {
	t.Helper()
	ca := authtest.NewCA(t, "strand-test")
	server := ca.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "localhost"}, Server: true, FileName: "server"})
	logs := &logBuffer{}
	b, _ := startBrokerWith(t, t.TempDir(), func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.Security = SecurityConfig{Protocol: protocol, TLS: authTLSFiles(server.CertFile, server.KeyFile, ""),
			SuperUsers: []string{"User:admin"}, AdminPassword: testAdminPassword}
		if edit != nil {
			edit(&c.Security)
		}
	})
	return b, ca, logs
}

func tlsTo(ca *authtest.CA, certs ...tls.Certificate) kgo.Opt {
	return kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), Certificates: certs, MinVersion: tls.VersionTLS12})
}

func TestSASLSSLScramProduceConsumeAdmin(t *testing.T) {
	b, ca, logs := startSecureBroker(t, ProtocolSASLSSL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	admin := kadm.NewClient(client(t, b, tlsTo(ca), kgo.SASL(scram.Auth{User: "admin", Pass: testAdminPassword}.AsSha512Mechanism())))
	const alicePassword = "alice-pw-77Xk"
	altered, err := admin.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "alice", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: alicePassword},
		{User: "alice", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: alicePassword},
	})
	if err != nil || altered["alice"].Err != nil {
		t.Fatalf("create alice: %v %v", err, altered["alice"].Err)
	}
	described, err := admin.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"admin", "alice", "strand-node-1"} {
		if len(described[u].CredInfos) != 2 {
			t.Errorf("user %s: %+v", u, described[u])
		}
	}
	if ci := described["alice"].CredInfos; len(ci) == 2 && (ci[0].Iterations != 4096 || ci[1].Iterations != 8192) {
		t.Errorf("alice's iterations: %+v", ci)
	}

	for _, mech := range []sasl.Mechanism{
		scram.Auth{User: "alice", Pass: alicePassword}.AsSha256Mechanism(),
		scram.Auth{User: "alice", Pass: alicePassword}.AsSha512Mechanism(),
	} {
		topic := "t-" + strings.ToLower(strings.ReplaceAll(mech.Name(), "-", ""))
		if _, err := admin.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatalf("%s: create topic: %v", mech.Name(), err)
		}
		cl := client(t, b, tlsTo(ca), kgo.SASL(mech), kgo.DefaultProduceTopic(topic),
			kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g-"+topic))
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("hello " + mech.Name())}).FirstErr(); err != nil {
			t.Fatalf("%s: produce: %v", mech.Name(), err)
		}
		fs := cl.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatalf("%s: fetch: %v", mech.Name(), errs)
		}
		if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "hello "+mech.Name() {
			t.Fatalf("%s: consumed %v", mech.Name(), recs)
		}
		// A non-super user may not see or change credentials (Cluster:Describe/Alter).
		if _, err := kadm.NewClient(cl).DescribeUserSCRAMs(ctx); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
			t.Errorf("%s: alice described credentials: %v", mech.Name(), err)
		}
	}

	// Wrong passwords, for each mechanism, and PLAIN over TLS checked against SCRAM.
	for _, mech := range []sasl.Mechanism{
		scram.Auth{User: "alice", Pass: "wrong-pw-1"}.AsSha256Mechanism(),
		scram.Auth{User: "alice", Pass: "wrong-pw-2"}.AsSha512Mechanism(),
		scram.Auth{User: "nobody", Pass: "wrong-pw-3"}.AsSha512Mechanism(),
	} {
		cl := client(t, b, tlsTo(ca), kgo.SASL(mech), kgo.RequestRetries(0))
		if err := cl.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("%s with a wrong password: %v", mech.Name(), err)
		}
	}

	// KIP-554 errors: too few iterations, deleting what does not exist, a duplicate.
	altered, err = admin.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "ghost", Mechanism: kadm.ScramSha256}},
		[]kadm.UpsertSCRAM{{User: "bob", Mechanism: kadm.ScramSha256, Iterations: 100, Salt: []byte("salt"), SaltedPassword: []byte("salted")}})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(altered["ghost"].Err, kerr.ResourceNotFound) || !errors.Is(altered["bob"].Err, kerr.UnacceptableCredential) {
		t.Errorf("alter errors: ghost %v, bob %v", altered["ghost"].Err, altered["bob"].Err)
	}
	altered, err = admin.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "alice", Mechanism: kadm.ScramSha256}}, nil)
	if err != nil || altered["alice"].Err != nil {
		t.Fatalf("delete alice's SCRAM-SHA-256: %v %v", err, altered["alice"].Err)
	}
	cl := client(t, b, tlsTo(ca), kgo.SASL(scram.Auth{User: "alice", Pass: alicePassword}.AsSha256Mechanism()), kgo.RequestRetries(0))
	if err := cl.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("deleted credential still logs in: %v", err)
	}

	// The node's own clients (replica fetchers, and any internal client built with
	// internalClientOpts) connect over TLS as User:strand-node-1.
	node := kadm.NewClient(client(t, b, b.internalClientOpts()...))
	if _, err := node.DescribeUserSCRAMs(ctx); err != nil {
		t.Errorf("the node's own client: %v", err)
	}

	for _, secret := range []string{testAdminPassword, alicePassword, "wrong-pw-1", "wrong-pw-2", "wrong-pw-3"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the log holds a password:\n%s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), "authentication failed") {
		t.Errorf("failed logins were not logged:\n%s", logs.String())
	}
}

func TestSASLPlain(t *testing.T) {
	// On SASL_PLAINTEXT, PLAIN is not offered unless the operator says so.
	b, _, logs := startSecureBroker(t, ProtocolSASLPlaintext, func(s *SecurityConfig) {
		s.SASLMechanisms = []string{"PLAIN", "SCRAM-SHA-512"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := client(t, b, kgo.SASL(plain.Auth{User: "admin", Pass: testAdminPassword}.AsMechanism()), kgo.RequestRetries(0))
	if err := cl.Ping(ctx); !errors.Is(err, kerr.UnsupportedSaslMechanism) {
		t.Errorf("PLAIN without TLS: %v", err)
	}
	b2, _, _ := startSecureBroker(t, ProtocolSASLPlaintext, func(s *SecurityConfig) {
		s.SASLMechanisms = []string{"PLAIN"}
		s.PlainWithoutTLS = true
	})
	cl = client(t, b2, kgo.SASL(plain.Auth{User: "admin", Pass: testAdminPassword}.AsMechanism()))
	if err := cl.Ping(ctx); err != nil {
		t.Errorf("PLAIN with --sasl-plain-without-tls: %v", err)
	}
	cl = client(t, b2, kgo.SASL(plain.Auth{User: "admin", Pass: "not-it-9"}.AsMechanism()), kgo.RequestRetries(0))
	if err := cl.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("PLAIN with a wrong password: %v", err)
	}
	if strings.Contains(logs.String(), testAdminPassword) {
		t.Fatal("the log holds a password")
	}
}

// rawConn speaks the Kafka protocol by hand, to send what no client library would.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	id int32
}

func dialRaw(t *testing.T, addr string) *rawConn {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc}
}

func (c *rawConn) send(req kmsg.Request) {
	c.id++
	buf := kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw")).AppendRequest(nil, req, c.id)
	if _, err := c.nc.Write(buf); err != nil {
		c.t.Fatal(err)
	}
}

// frame reads one size-prefixed frame; an error means the server closed the connection.
func (c *rawConn) frame() ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err := io.ReadFull(c.nc, b)
	return b, err
}

func (c *rawConn) recv(resp kmsg.Response) {
	c.t.Helper()
	b, err := c.frame()
	if err != nil {
		c.t.Fatalf("read %T: %v", resp, err)
	}
	b = b[4:] // correlation id
	if resp.IsFlexible() && resp.Key() != int16(kmsg.ApiVersions) {
		b = b[1:]
	}
	if err := resp.ReadFrom(b); err != nil {
		c.t.Fatalf("decode %T: %v", resp, err)
	}
}

func (c *rawConn) expectClosed() {
	c.t.Helper()
	if b, err := c.frame(); err == nil {
		c.t.Fatalf("connection still open; got %d more bytes", len(b))
	}
}

func saslRequest(version int16, mech string) *kmsg.SASLHandshakeRequest {
	r := kmsg.NewPtrSASLHandshakeRequest()
	r.Version, r.Mechanism = version, mech
	return r
}

func saslAuth(version int16, token []byte) *kmsg.SASLAuthenticateRequest {
	r := kmsg.NewPtrSASLAuthenticateRequest()
	r.Version, r.SASLAuthBytes = version, token
	return r
}

func TestSASLRefusesBadInput(t *testing.T) {
	b, _, logs := startSecureBroker(t, ProtocolSASLPlaintext, nil)
	addr := b.KafkaAddr().String()

	t.Run("ApiVersions before authentication lists SASL", func(t *testing.T) {
		c := dialRaw(t, addr)
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 3
		req.ClientSoftwareName, req.ClientSoftwareVersion = "raw", "1"
		c.send(req)
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		c.recv(resp)
		var keys []int16
		for _, k := range resp.ApiKeys {
			keys = append(keys, k.ApiKey)
		}
		if !bytes.Contains(int16s(keys), int16s([]int16{17})) || !bytes.Contains(int16s(keys), int16s([]int16{36})) {
			t.Fatalf("ApiVersions keys %v lack SaslHandshake/SaslAuthenticate", keys)
		}
	})
	t.Run("request before authentication", func(t *testing.T) {
		c := dialRaw(t, addr)
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 4
		c.send(req)
		c.expectClosed()
	})
	t.Run("request during the exchange", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send(saslRequest(1, "SCRAM-SHA-256"))
		c.recv(kmsg.NewPtrSASLHandshakeResponse())
		c.send(kmsg.NewPtrMetadataRequest())
		c.expectClosed()
	})
	t.Run("unknown mechanism", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send(saslRequest(1, "GSSAPI"))
		resp := kmsg.NewPtrSASLHandshakeResponse()
		resp.Version = 1
		c.recv(resp)
		if resp.ErrorCode != kerr.UnsupportedSaslMechanism.Code || len(resp.SupportedMechanisms) != 2 {
			t.Fatalf("handshake answer %+v", resp)
		}
		c.expectClosed()
	})
	t.Run("authenticate without handshake", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send(saslAuth(1, []byte("n,,n=admin,r=abc")))
		resp := kmsg.NewPtrSASLAuthenticateResponse()
		resp.Version = 1
		c.recv(resp)
		if resp.ErrorCode != kerr.IllegalSaslState.Code {
			t.Fatalf("answer %+v", resp)
		}
		c.expectClosed()
	})
	for _, garbage := range [][]byte{nil, []byte("\x00\xff\x00"), []byte("n,,n=admin"), []byte(strings.Repeat("=", 5000))} {
		t.Run("garbage token", func(t *testing.T) {
			c := dialRaw(t, addr)
			c.send(saslRequest(1, "SCRAM-SHA-512"))
			c.recv(kmsg.NewPtrSASLHandshakeResponse())
			c.send(saslAuth(2, garbage))
			resp := kmsg.NewPtrSASLAuthenticateResponse()
			resp.Version = 2
			c.recv(resp)
			if resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
				t.Fatalf("answer %+v", resp)
			}
			c.expectClosed()
		})
	}
	t.Run("wrong nonce", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send(saslRequest(1, "SCRAM-SHA-256"))
		c.recv(kmsg.NewPtrSASLHandshakeResponse())
		c.send(saslAuth(1, []byte("n,,n=admin,r=clientnonce")))
		first := kmsg.NewPtrSASLAuthenticateResponse()
		first.Version = 1
		c.recv(first)
		if first.ErrorCode != 0 || !strings.HasPrefix(string(first.SASLAuthBytes), "r=clientnonce") {
			t.Fatalf("server-first %+v", first)
		}
		c.send(saslAuth(1, []byte("c=biws,r=clientnonceNOTOURS,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")))
		final := kmsg.NewPtrSASLAuthenticateResponse()
		final.Version = 1
		c.recv(final)
		if final.ErrorCode != kerr.SaslAuthenticationFailed.Code {
			t.Fatalf("server-final %+v", final)
		}
		c.expectClosed()
	})
	t.Run("v0 handshake with raw tokens", func(t *testing.T) {
		// Old clients send SaslHandshake v0 and then bare SCRAM messages.
		c := dialRaw(t, addr)
		c.send(saslRequest(0, "SCRAM-SHA-512"))
		c.recv(kmsg.NewPtrSASLHandshakeResponse())
		session, msg, err := scram.Auth{User: "admin", Pass: testAdminPassword}.AsSha512Mechanism().Authenticate(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		for done := false; !done; {
			c.nc.Write(binary.BigEndian.AppendUint32(nil, uint32(len(msg))))
			c.nc.Write(msg)
			challenge, err := c.frame()
			if err != nil {
				t.Fatalf("raw exchange: %v", err)
			}
			if done, msg, err = session.Challenge(challenge); err != nil {
				t.Fatalf("server's answer: %v", err)
			}
		}
		// Authenticated: an ordinary request is served.
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 4
		c.send(req)
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		c.recv(resp)
		if len(resp.Brokers) != 1 {
			t.Fatalf("metadata after raw SASL: %+v", resp)
		}
	})
	t.Run("v0 handshake with a wrong password", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send(saslRequest(0, "SCRAM-SHA-256"))
		c.recv(kmsg.NewPtrSASLHandshakeResponse())
		session, msg, _ := scram.Auth{User: "admin", Pass: "nope-pw-4"}.AsSha256Mechanism().Authenticate(context.Background(), addr)
		c.nc.Write(binary.BigEndian.AppendUint32(nil, uint32(len(msg))))
		c.nc.Write(msg)
		challenge, err := c.frame()
		if err != nil {
			t.Fatal(err)
		}
		_, msg, _ = session.Challenge(challenge)
		c.nc.Write(binary.BigEndian.AppendUint32(nil, uint32(len(msg))))
		c.nc.Write(msg)
		c.expectClosed()
	})
	if strings.Contains(logs.String(), testAdminPassword) || strings.Contains(logs.String(), "nope-pw-4") {
		t.Fatal("the log holds a password")
	}
}

func int16s(v []int16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.BigEndian.AppendUint16(b, uint16(x))
	}
	return b
}

func TestMutualTLS(t *testing.T) {
	clientCA := authtest.NewCA(t, "clients")
	good := clientCA.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"apps"}}, Client: true})
	expired := clientCA.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "old"}, Client: true, Expired: true})
	untrusted := authtest.NewCA(t, "strangers").Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "mallory"}, Client: true})
	b, ca, logs := startSecureBroker(t, ProtocolSSL, func(s *SecurityConfig) {
		s.TLS.ClientCAFile = clientCA.CertFile
		s.PrincipalMappingRules = "RULE:^CN=(.*?),OU=apps$/$1/L"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cl := client(t, b, tlsTo(ca, *good.TLS), kgo.DefaultProduceTopic("mtls"), kgo.ConsumeTopics("mtls"))
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "mtls"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("over mtls")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if recs := cl.PollFetches(ctx).Records(); len(recs) != 1 || string(recs[0].Value) != "over mtls" {
		t.Fatalf("consumed %v", recs)
	}

	for name, opt := range map[string]kgo.Opt{
		"expired certificate":   tlsTo(ca, *expired.TLS),
		"untrusted certificate": tlsTo(ca, *untrusted.TLS),
		"no certificate":        tlsTo(ca),
		// Mapped by no rule: a certificate the CA signed whose subject has no OU=apps.
		"unmapped subject": tlsTo(ca, *clientCA.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "bob"}, Client: true}).TLS),
	} {
		cl := client(t, b, opt, kgo.RequestRetries(0), kgo.DialTimeout(3*time.Second))
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		if err := cl.Ping(pctx); err == nil {
			t.Errorf("%s: connected", name)
		}
		pcancel()
	}
	// A plaintext client on the TLS port: its request is no TLS record, so the handshake
	// fails and the connection closes.
	c := dialRaw(t, b.KafkaAddr().String())
	c.send(kmsg.NewPtrApiVersionsRequest())
	c.expectClosed()
	if !strings.Contains(logs.String(), "tls handshake") {
		t.Errorf("refused handshakes not logged:\n%s", logs.String())
	}
}

func authTLSFiles(cert, key, ca string) auth.TLSFiles {
	return auth.TLSFiles{CertFile: cert, KeyFile: key, ClientCAFile: ca}
}

// TestAdminPasswordOnlyOnFirstStart: STRAND_ADMIN_PASSWORD creates admin's credentials
// when admin has none; a later start with another value changes nothing, so a password
// changed with `strand user create admin` is not reset by a restart.
func TestAdminPasswordOnlyOnFirstStart(t *testing.T) {
	ca := authtest.NewCA(t, "restart")
	server := ca.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "localhost"}, Server: true, FileName: "server"})
	dir := t.TempDir()
	start := func(password string) (*Broker, func()) {
		return startBrokerWith(t, dir, func(c *Config) {
			c.Security = SecurityConfig{Protocol: ProtocolSASLSSL, TLS: authTLSFiles(server.CertFile, server.KeyFile, ""),
				SuperUsers: []string{"User:admin"}, AdminPassword: password}
		})
	}
	ping := func(b *Broker, password string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return client(t, b, tlsTo(ca), kgo.RequestRetries(0), kgo.SASL(scram.Auth{User: "admin", Pass: password}.AsSha256Mechanism())).Ping(ctx)
	}
	b, stop := start("first-pw")
	if err := ping(b, "first-pw"); err != nil {
		t.Fatalf("first start: %v", err)
	}
	stop()
	b, _ = start("second-pw")
	if err := ping(b, "first-pw"); err != nil {
		t.Errorf("after a restart the first password fails: %v", err)
	}
	if err := ping(b, "second-pw"); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("a restart with another STRAND_ADMIN_PASSWORD changed admin's password: %v", err)
	}
}

// TestTransactionsOnSecuredNode: on SASL_SSL a transaction commits end to end. Its markers
// and the KIP-890 verification travel over the node's own client, which must log in like
// any other; a read_committed consumer then sees the committed records only.
func TestTransactionsOnSecuredNode(t *testing.T) {
	b, ca, _ := startSecureBroker(t, ProtocolSASLSSL, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	login := kgo.SASL(scram.Auth{User: "admin", Pass: testAdminPassword}.AsSha512Mechanism())
	createTopic(t, client(t, b, tlsTo(ca), login), "sectx", 1, nil)
	producer := client(t, b, tlsTo(ca), login, kgo.TransactionalID("sec-txn"), kgo.DefaultProduceTopic("sectx"))
	for i, end := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort} {
		if err := producer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte{byte('a' + i)}}).FirstErr(); err != nil {
			t.Fatalf("transactional produce on SASL_SSL: %v", err)
		}
		if err := producer.EndTransaction(ctx, end); err != nil {
			t.Fatalf("end transaction on SASL_SSL: %v", err)
		}
	}
	reader := client(t, b, tlsTo(ca), login, kgo.ConsumeTopics("sectx"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var got []string
	for len(got) == 0 && ctx.Err() == nil {
		reader.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if len(got) != 1 || got[0] != "a" {
		t.Fatalf("read_committed on SASL_SSL read %q, want only the committed %q", got, "a")
	}
}
