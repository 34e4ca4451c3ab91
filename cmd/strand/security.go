package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strand-data/strand/internal/broker"
)

// addSecurityFlags adds serve's TLS and SASL flags (DESIGN §3, Security).
func addSecurityFlags(f *pflag.FlagSet, s *broker.SecurityConfig) {
	f.StringVar(&s.TLS.CertFile, "tls-cert-file", "", "PEM certificate of the Kafka and HTTP listeners (reloaded when the file changes)")
	f.StringVar(&s.TLS.KeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	f.StringVar(&s.TLS.ClientCAFile, "tls-client-ca-file", "", "PEM CA bundle: Kafka clients must present a certificate it signed (mutual TLS)")
	f.StringVar(&s.PrincipalMappingRules, "ssl-principal-mapping-rules", "", "map client certificate subjects to user names, Kafka's ssl.principal.mapping.rules syntax")
	f.StringVar(&s.Protocol, "kafka-security-protocol", broker.ProtocolPlaintext, "Kafka listener: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
	f.StringSliceVar(&s.SASLMechanisms, "sasl-mechanisms", nil, "SASL mechanisms offered: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (default both SCRAM)")
	f.BoolVar(&s.PlainWithoutTLS, "sasl-plain-without-tls", false, "offer PLAIN on SASL_PLAINTEXT, where passwords cross the network in the clear")
	f.StringSliceVar(&s.SuperUsers, "super-users", nil, "principals allowed everything, e.g. User:admin")
	f.DurationVar(&s.MaxReauth, "connections-max-reauth", 0, "SASL session lifetime after which clients re-authenticate (connections.max.reauth.ms); 0 for none")
}

// addClientSecurityFlags adds the flags client commands reach a secured node with; the
// password comes from STRAND_SASL_PASSWORD only, never a flag (which ps would show).
func addClientSecurityFlags(f *pflag.FlagSet) {
	f.String("tls-ca-file", "", "PEM CA bundle to verify the brokers' certificates; enables TLS")
	f.String("sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (password in STRAND_SASL_PASSWORD)")
	f.String("sasl-user", "", "SASL user name")
}

// clientSecurityOpts turns a client command's security flags into kgo options.
func clientSecurityOpts(cmd *cobra.Command) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	caFile, _ := cmd.Flags().GetString("tls-ca-file")
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca-file %s: no PEM certificate in it", caFile)
		}
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}))
	}
	mech, _ := cmd.Flags().GetString("sasl-mechanism")
	user, _ := cmd.Flags().GetString("sasl-user")
	if mech == "" {
		if user != "" {
			return nil, fmt.Errorf("--sasl-user needs --sasl-mechanism")
		}
		return opts, nil
	}
	pass := os.Getenv("STRAND_SASL_PASSWORD")
	if user == "" || pass == "" {
		return nil, fmt.Errorf("--sasl-mechanism %s needs --sasl-user and STRAND_SASL_PASSWORD", mech)
	}
	switch mech {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("--sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", mech)
	}
	return opts, nil
}
