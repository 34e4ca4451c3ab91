package compat

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strand-data/strand/internal/auth/authtest"
	"github.com/strand-data/strand/test/harness"
)

// secureNode starts a SASL_SSL node (or SSL with a client CA) whose admin comes from
// STRAND_ADMIN_PASSWORD, and creates the user app with password app-pw.
type secureNode struct {
	node     *harness.Node
	ca       *authtest.CA
	clientCA *authtest.CA
}

func startSecureNode(t *testing.T, protocol string) *secureNode {
	t.Helper()
	ca := authtest.NewCA(t, "compat")
	clientCA := authtest.NewCA(t, "compat-clients")
	server := ca.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "localhost"}, Server: true, FileName: "server"})
	args := []string{"--kafka-security-protocol", protocol, "--tls-cert-file", server.CertFile, "--tls-key-file", server.KeyFile, "--super-users", "User:admin"}
	if protocol == "SSL" {
		args = append(args, "--tls-client-ca-file", clientCA.CertFile, "--ssl-principal-mapping-rules", "RULE:^CN=(.*)$/$1/,DEFAULT")
	}
	n := harness.Start(t, harness.Options{Args: args, Env: []string{"STRAND_ADMIN_PASSWORD=admin-pw"}, HTTPSCAFile: ca.CertFile})
	sn := &secureNode{node: n, ca: ca, clientCA: clientCA}
	if protocol == "SASL_SSL" {
		cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr), kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool()}),
			kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha512Mechanism()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		altered, err := kadm.NewClient(cl).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
			{User: "app", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "app-pw"},
			{User: "app", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "app-pw"},
		})
		if err != nil || altered["app"].Err != nil {
			t.Fatalf("create user app: %v %v", err, altered["app"].Err)
		}
	}
	return sn
}

func TestKcatSecure(t *testing.T) {
	kcat := need(t, "kcat")
	sn := startSecureNode(t, "SASL_SSL")
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			topic := "kc-" + strings.ToLower(mech)
			conf := []string{"-b", sn.node.KafkaAddr, "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=" + mech,
				"-X", "sasl.username=app", "-X", "sasl.password=app-pw", "-X", "ssl.ca.location=" + sn.ca.CertFile}
			var in strings.Builder
			for i := 0; i < 100; i++ {
				fmt.Fprintf(&in, "k%d:v%d\n", i, i)
			}
			run(t, in.String(), kcat, append(conf, "-P", "-t", topic, "-K:")...)
			out := run(t, "", kcat, append(conf, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k=%s\n")...)
			if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 100 || lines[99] != "k99=v99" {
				t.Fatalf("kcat consumed %d lines, last %q", len(lines), lines[len(lines)-1])
			}
			// A wrong password is refused.
			bad := append(append([]string(nil), conf...), "-X", "sasl.password=wrong", "-L", "-m", "5")
			if out, err := exec.Command(kcat, bad...).CombinedOutput(); err == nil {
				t.Fatalf("kcat with a wrong password listed metadata:\n%s", out)
			} else if !strings.Contains(string(out), "Authentication failed") && !strings.Contains(string(out), "SASL") {
				t.Logf("kcat with a wrong password: %s", out)
			}
		})
	}
}

func TestKcatMutualTLS(t *testing.T) {
	kcat := need(t, "kcat")
	sn := startSecureNode(t, "SSL")
	good := sn.clientCA.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "kcat-app"}, Client: true, FileName: "kcat"})
	conf := []string{"-b", sn.node.KafkaAddr, "-X", "security.protocol=SSL", "-X", "ssl.ca.location=" + sn.ca.CertFile,
		"-X", "ssl.certificate.location=" + good.CertFile, "-X", "ssl.key.location=" + good.KeyFile}
	run(t, "a\nb\nc\n", kcat, append(conf, "-P", "-t", "kc-mtls")...)
	out := run(t, "", kcat, append(conf, "-C", "-t", "kc-mtls", "-o", "beginning", "-e", "-q")...)
	if strings.TrimSpace(out) != "a\nb\nc" {
		t.Fatalf("kcat over mTLS consumed %q", out)
	}
	for name, cert := range map[string]*authtest.Cert{
		"expired":   sn.clientCA.Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "old"}, Client: true, Expired: true, FileName: "old"}),
		"untrusted": authtest.NewCA(t, "other").Issue(t, authtest.Options{Subject: pkix.Name{CommonName: "x"}, Client: true, FileName: "x"}),
	} {
		args := []string{"-b", sn.node.KafkaAddr, "-X", "security.protocol=SSL", "-X", "ssl.ca.location=" + sn.ca.CertFile,
			"-X", "ssl.certificate.location=" + cert.CertFile, "-X", "ssl.key.location=" + cert.KeyFile, "-L", "-m", "5"}
		if out, err := exec.Command(kcat, args...).CombinedOutput(); err == nil {
			t.Errorf("kcat with an %s certificate listed metadata:\n%s", name, out)
		}
	}
}

func TestPythonClientsSecure(t *testing.T) {
	python := need(t, "/usr/bin/python3")
	for _, client := range []string{"kafka-python", "confluent-kafka"} {
		t.Run(client, func(t *testing.T) {
			needPythonClient(t, python, client)
			sn := startSecureNode(t, "SASL_SSL")
			for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
				out := run(t, "", python, filepath.Join("testdata", "python_secure.py"), sn.node.KafkaAddr, client, mech, sn.ca.CertFile, "app", "app-pw")
				t.Logf("%s", strings.TrimSpace(out))
			}
		})
	}
}
