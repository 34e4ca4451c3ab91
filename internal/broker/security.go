package broker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strand-data/strand/internal/auth"
	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/kafka"
)

// Security protocols of the Kafka listener (Kafka's security.protocol names).
const (
	ProtocolPlaintext     = "PLAINTEXT"
	ProtocolSSL           = "SSL"
	ProtocolSASLPlaintext = "SASL_PLAINTEXT"
	ProtocolSASLSSL       = "SASL_SSL"
)

// SecurityConfig is how a node encrypts and authenticates; the zero value is PLAINTEXT
// with no TLS anywhere, Strand as it was before security.
type SecurityConfig struct {
	// Protocol is the Kafka listener's: PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL.
	Protocol string
	// TLS files; with a certificate the HTTP listener serves HTTPS too.
	TLS auth.TLSFiles
	// PrincipalMappingRules is ssl.principal.mapping.rules for client certificates.
	PrincipalMappingRules string
	// SASLMechanisms offered on a SASL listener (default SCRAM-SHA-256 and SCRAM-SHA-512).
	SASLMechanisms []string
	// PlainWithoutTLS offers PLAIN on SASL_PLAINTEXT, where the password travels in clear.
	PlainWithoutTLS bool
	// SuperUsers are principals ("User:admin") allowed everything; the authorizer reads
	// them, and until it exists they alone manage credentials on a secured node.
	SuperUsers []string
	// AdminPassword, when set and the user admin has no SCRAM credential yet, creates one
	// (STRAND_ADMIN_PASSWORD on a node's first start).
	AdminPassword string
	// MaxReauth is connections.max.reauth.ms (KIP-368); 0 for sessions that never expire.
	MaxReauth time.Duration
}

func (s SecurityConfig) sasl() bool {
	return s.Protocol == ProtocolSASLPlaintext || s.Protocol == ProtocolSASLSSL
}

func (s SecurityConfig) listenerTLS() bool {
	return s.Protocol == ProtocolSSL || s.Protocol == ProtocolSASLSSL
}

// Secured reports a node that authenticates its Kafka clients.
func (s SecurityConfig) Secured() bool {
	return s.sasl() || (s.listenerTLS() && s.TLS.ClientCAFile != "")
}

// Validate checks a security configuration before the node starts.
func (s *SecurityConfig) Validate() error {
	if s.Protocol == "" {
		s.Protocol = ProtocolPlaintext
	}
	switch s.Protocol {
	case ProtocolPlaintext, ProtocolSSL, ProtocolSASLPlaintext, ProtocolSASLSSL:
	default:
		return fmt.Errorf("security protocol %q: want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", s.Protocol)
	}
	hasCert := s.TLS.CertFile != "" || s.TLS.KeyFile != ""
	if s.listenerTLS() && !hasCert {
		return fmt.Errorf("security protocol %s needs --tls-cert-file and --tls-key-file", s.Protocol)
	}
	if s.TLS.ClientCAFile != "" && !s.listenerTLS() {
		return fmt.Errorf("--tls-client-ca-file needs security protocol SSL or SASL_SSL")
	}
	if s.sasl() {
		if len(s.SASLMechanisms) == 0 {
			s.SASLMechanisms = []string{auth.ScramSHA256.String(), auth.ScramSHA512.String()}
		}
		if err := auth.ValidateMechanisms(s.SASLMechanisms); err != nil {
			return err
		}
		if s.Protocol == ProtocolSASLPlaintext && !s.PlainWithoutTLS && len(s.SASLMechanisms) == 1 && s.SASLMechanisms[0] == auth.MechanismPlain {
			return fmt.Errorf("SASL PLAIN without TLS would send passwords in the clear: use SASL_SSL, a SCRAM mechanism, or --sasl-plain-without-tls")
		}
	}
	for _, p := range s.SuperUsers {
		if !strings.HasPrefix(p, "User:") || len(p) == len("User:") {
			return fmt.Errorf("super user %q: want User:<name>", p)
		}
	}
	return nil
}

// nodeUser is the user a node's own clients authenticate as.
func nodeUser(id int32) string { return fmt.Sprintf("strand-node-%d", id) }

// setUpSecurity builds the listeners' TLS and SASL settings.
func (b *Broker) setUpSecurity() (kafka.Security, error) {
	sc := &b.cfg.Security
	if err := sc.Validate(); err != nil {
		return kafka.Security{}, err
	}
	if sc.Secured() && len(b.cfg.Voters) > 1 {
		// Raft and the metadata forwarding between nodes do not yet run over TLS with
		// authentication; refusing is better than a cluster whose own traffic is open.
		return kafka.Security{}, errors.New("security (SASL or mutual TLS) is supported on a single node only for now; a cluster of several voters cannot be secured yet")
	}
	var sec kafka.Security
	if sc.TLS.CertFile != "" || sc.TLS.KeyFile != "" {
		st, err := auth.NewServerTLS(sc.TLS)
		if err != nil {
			return kafka.Security{}, err
		}
		b.tls = st
		if sc.listenerTLS() {
			sec.TLS = st
		}
	}
	if sc.PrincipalMappingRules != "" {
		rules, err := auth.ParsePrincipalRules(sc.PrincipalMappingRules)
		if err != nil {
			return kafka.Security{}, fmt.Errorf("principal mapping rules: %w", err)
		}
		sec.PrincipalRules = rules
	}
	sec.NodePrincipal = auth.UserPrincipal(nodeUser(b.cfg.NodeID))
	if sc.sasl() {
		sec.SASL = true
		sec.Mechanisms = sc.SASLMechanisms
		sec.PlainWithoutTLS = sc.PlainWithoutTLS
		sec.MaxReauth = sc.MaxReauth
		sec.Credentials = func(user string, m auth.ScramMechanism) (auth.ScramCredential, bool) {
			if b.meta == nil {
				return auth.ScramCredential{}, false
			}
			return b.meta.State().ScramCredential(user, m)
		}
	}
	return sec, nil
}

// provisionCredentials runs once the metadata is ready: it gives the node's own clients a
// fresh SCRAM credential for this run (the password lives only in memory) and creates the
// admin's from STRAND_ADMIN_PASSWORD if admin has none.
func (b *Broker) provisionCredentials(ctx context.Context) error {
	sc := &b.cfg.Security
	if !sc.sasl() {
		return nil
	}
	pw := make([]byte, 32)
	rand.Read(pw)
	b.nodePassword = base64.RawURLEncoding.EncodeToString(pw)
	var upserts []cluster.ScramUpsert
	for _, m := range []auth.ScramMechanism{auth.ScramSHA256, auth.ScramSHA512} {
		c, err := m.NewScramCredential(b.nodePassword, auth.MinScramIterations)
		if err != nil {
			return err
		}
		upserts = append(upserts, cluster.ScramUpsert{User: nodeUser(b.cfg.NodeID), Mechanism: m, Credential: c})
	}
	st := b.meta.State()
	_, has256 := st.ScramCredential("admin", auth.ScramSHA256)
	_, has512 := st.ScramCredential("admin", auth.ScramSHA512)
	if sc.AdminPassword != "" && !has256 && !has512 {
		for _, m := range []auth.ScramMechanism{auth.ScramSHA256, auth.ScramSHA512} {
			c, err := m.NewScramCredential(sc.AdminPassword, auth.MinScramIterations)
			if err != nil {
				return err
			}
			upserts = append(upserts, cluster.ScramUpsert{User: "admin", Mechanism: m, Credential: c})
		}
		b.log.Info("created SCRAM credentials for admin from STRAND_ADMIN_PASSWORD")
	}
	if err := b.meta.AlterScramCredentials(ctx, upserts, nil); err != nil {
		return fmt.Errorf("node credentials: %w", err)
	}
	return nil
}

// internalClientOpts are what every kgo client the node builds to reach its own Kafka
// listener needs when security is on: TLS that trusts exactly this node's certificate,
// and SASL as the node's own user.
func (b *Broker) internalClientOpts() []kgo.Opt {
	var opts []kgo.Opt
	sc := &b.cfg.Security
	if b.tls != nil && sc.listenerTLS() {
		opts = append(opts, kgo.DialTLSConfig(b.tls.SelfClientConfig()))
	}
	if sc.sasl() {
		opts = append(opts, kgo.SASL(b.nodeMechanism()))
	}
	return opts
}

func (b *Broker) nodeMechanism() sasl.Mechanism {
	mechs := b.cfg.Security.SASLMechanisms
	a := scram.Auth{User: nodeUser(b.cfg.NodeID), Pass: b.nodePassword}
	switch {
	case slices.Contains(mechs, auth.ScramSHA512.String()):
		return a.AsSha512Mechanism()
	case slices.Contains(mechs, auth.ScramSHA256.String()):
		return a.AsSha256Mechanism()
	}
	return plain.Auth{User: a.User, Pass: a.Pass}.AsMechanism()
}

// mayManageCredentials is the check that stands in for the authorizer's Cluster:Alter and
// Cluster:Describe until ACLs exist: on a secured node only super users and the node itself
// see or change credentials.
func (b *Broker) mayManageCredentials(principal string) bool {
	if !b.cfg.Security.Secured() {
		return true
	}
	return principal == auth.UserPrincipal(nodeUser(b.cfg.NodeID)) || slices.Contains(b.cfg.Security.SuperUsers, principal)
}
