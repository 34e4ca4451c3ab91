package main

import (
	"crypto/x509/pkix"
	"strings"
	"testing"

	"github.com/strand-data/strand/internal/auth/authtest"
	"github.com/strand-data/strand/test/harness"
)

// TestCLISecureNode runs the README's "Secure a node": a SASL_SSL node whose admin comes
// from STRAND_ADMIN_PASSWORD, a user made with `strand user create`, and that user
// producing and consuming with the client flags.
func TestCLISecureNode(t *testing.T) {
	ca := authtest.NewCA(t, "cli")
	server := ca.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "localhost"}, Server: true, FileName: "server"})
	node := harness.Start(t, harness.Options{
		Args: []string{"--kafka-security-protocol", "SASL_SSL", "--tls-cert-file", server.CertFile, "--tls-key-file", server.KeyFile,
			"--super-users", "User:admin"},
		Env:         []string{"STRAND_ADMIN_PASSWORD=cli-admin-pw"},
		HTTPSCAFile: ca.CertFile,
	})
	base := []string{"STRAND_BROKERS=" + node.KafkaAddr, "STRAND_TLS_CA_FILE=" + ca.CertFile}
	admin := append(base, "STRAND_SASL_MECHANISM=SCRAM-SHA-512", "STRAND_SASL_USER=admin", "STRAND_SASL_PASSWORD=cli-admin-pw")
	must := func(env []string, stdin string, args ...string) string {
		t.Helper()
		out, errOut, err := strand(t, env, stdin, args...)
		if err != nil {
			t.Fatalf("strand %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	must(admin, "dana-pw\n", "user", "create", "dana", "--password-stdin")
	if out := must(admin, "", "user", "list"); !strings.Contains(out, "dana") || !strings.Contains(out, "SCRAM-SHA-256,SCRAM-SHA-512") {
		t.Fatalf("user list:\n%s", out)
	}
	must(admin, "", "topic", "create", "secure-events")
	dana := append(base, "STRAND_SASL_MECHANISM=SCRAM-SHA-256", "STRAND_SASL_USER=dana", "STRAND_SASL_PASSWORD=dana-pw")
	must(dana, "hello\n", "produce", "secure-events")
	if out := must(dana, "", "consume", "secure-events", "--from", "beginning", "--count", "1"); !strings.Contains(out, "hello") {
		t.Fatalf("consumed:\n%s", out)
	}
	// Dana is no super user: she may not list users.
	if out, errOut, err := strand(t, dana, "", "user", "list"); err == nil || !strings.Contains(errOut, "CLUSTER_AUTHORIZATION_FAILED") {
		t.Fatalf("dana listed users: %v\n%s%s", err, out, errOut)
	}
	// Without credentials, or with a wrong password, nothing is served.
	if _, _, err := strand(t, base, "", "topic", "list"); err == nil {
		t.Fatal("topic list without SASL succeeded")
	}
	wrong := append(base, "STRAND_SASL_MECHANISM=SCRAM-SHA-256", "STRAND_SASL_USER=dana", "STRAND_SASL_PASSWORD=not-dana")
	if _, errOut, err := strand(t, wrong, "", "topic", "list"); err == nil || !strings.Contains(errOut, "SASL_AUTHENTICATION_FAILED") {
		t.Fatalf("wrong password: %v %s", err, errOut)
	}
	must(admin, "", "user", "delete", "dana")
	if _, _, err := strand(t, dana, "", "topic", "list"); err == nil {
		t.Fatal("a deleted user still logs in")
	}
}

// TestServeRefusesSecuredCluster: raft and forwarding between nodes do not run over TLS
// yet, so a secured node with several voters is refused at start, saying why.
func TestServeRefusesSecuredCluster(t *testing.T) {
	ca := authtest.NewCA(t, "cli")
	server := ca.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "localhost"}, Server: true, FileName: "server"})
	_, errOut, err := strand(t, nil, "", "serve", "--data-dir", t.TempDir(), "--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--kafka-security-protocol", "SASL_SSL", "--tls-cert-file", server.CertFile, "--tls-key-file", server.KeyFile,
		"--node-id", "1", "--controller-addr", "127.0.0.1:0", "--controller-voters", "1@127.0.0.1:19093,2@127.0.0.1:19094,3@127.0.0.1:19095")
	if err == nil || !strings.Contains(errOut, "single node only") {
		t.Fatalf("secured cluster start: %v\n%s", err, errOut)
	}
	_, errOut, err = strand(t, nil, "", "serve", "--data-dir", t.TempDir(), "--kafka-security-protocol", "SSL")
	if err == nil || !strings.Contains(errOut, "--tls-cert-file") {
		t.Fatalf("SSL without a certificate: %v\n%s", err, errOut)
	}
}
