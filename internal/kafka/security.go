package kafka

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/auth"
)

// Security configures how the listener authenticates its clients. The zero value is
// Kafka's PLAINTEXT: no TLS, no SASL, every connection is User:ANONYMOUS.
type Security struct {
	// TLS, when set, makes the listener SSL (or SASL_SSL with SASL).
	TLS *auth.ServerTLS
	// SASL requires a SASL authentication before any request but ApiVersions and the SASL
	// ones (SASL_PLAINTEXT, SASL_SSL).
	SASL bool
	// Mechanisms are the SASL mechanisms offered, e.g. SCRAM-SHA-512.
	Mechanisms []string
	// Credentials finds a user's SCRAM credential.
	Credentials auth.CredentialLookup
	// PlainWithoutTLS offers PLAIN on connections without TLS, where the password would
	// cross the network in the clear; off unless the operator asks.
	PlainWithoutTLS bool
	// PrincipalRules map a client certificate's subject to a user name
	// (ssl.principal.mapping.rules); nil keeps the subject as it is.
	PrincipalRules *auth.PrincipalRules
	// NodePrincipal is the principal of a connection that presents the node's own
	// certificate: the node's replica fetchers and other internal clients.
	NodePrincipal string
	// MaxReauth is connections.max.reauth.ms (KIP-368): a SASL session lasts this long and
	// the client must authenticate again on the same connection before it ends; 0 for no
	// limit.
	MaxReauth time.Duration
	// AuthTimeout bounds the TLS handshake and the SASL exchange of a new connection.
	AuthTimeout time.Duration
}

// The SASL APIs the listener answers itself, advertised in ApiVersions when SASL is on.
var saslAPIs = []kmsg.ApiVersionsResponseApiKey{
	{ApiKey: int16(kmsg.SASLHandshake), MinVersion: 0, MaxVersion: 1},
	{ApiKey: int16(kmsg.SASLAuthenticate), MinVersion: 0, MaxVersion: 2},
}

// errAuth closes a connection whose authentication failed; it is logged without the
// client's tokens.
type errAuth struct{ reason string }

func (e *errAuth) Error() string { return e.reason }

// rawToken is a SASL token sent without a Kafka header, after a v0 SaslHandshake.
type rawToken []byte

// saslState is a connection's progress through SASL (Kafka's SaslServerAuthenticator).
type saslState struct {
	exchange      *auth.Exchange
	mechanism     string // of the last successful authentication, for re-authentication
	user          string
	raw           bool      // v0 handshake: the next frames are bare tokens
	authenticated bool      // a session is open
	expires       time.Time // zero: the session does not expire
}

// handshakeTLS completes the TLS handshake of a new connection and sets its principal
// from the client certificate, if it sent one.
func (c *conn) handshakeTLS() error {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	sec := &c.s.cfg.Security
	ctx, cancel := context.WithTimeout(c.ctx, sec.AuthTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return &errAuth{"tls handshake: " + err.Error()}
	}
	peers := tc.ConnectionState().PeerCertificates
	if len(peers) == 0 {
		return nil
	}
	if sec.TLS.IsOwnCertificate(peers[0].Raw) && sec.NodePrincipal != "" {
		c.info.Principal = sec.NodePrincipal
		return nil
	}
	dn := peers[0].Subject.String()
	name := dn
	if sec.PrincipalRules != nil {
		var err error
		if name, err = sec.PrincipalRules.Map(dn); err != nil {
			return &errAuth{err.Error()}
		}
	}
	c.info.Principal = auth.UserPrincipal(name)
	return nil
}

// mechanisms are the SASL mechanisms this connection may use.
func (c *conn) mechanisms() []string {
	sec := &c.s.cfg.Security
	if sec.TLS != nil || sec.PlainWithoutTLS {
		return sec.Mechanisms
	}
	return slices.DeleteFunc(slices.Clone(sec.Mechanisms), func(m string) bool { return m == auth.MechanismPlain })
}

// gateSASL decides what happens to a request on a SASL listener. handled reports that
// the listener answered it itself (resp, nil when nothing is owed); err closes the
// connection, after resp if there is one. Unhandled requests go to the handler.
func (c *conn) gateSASL(req *Request) (resp Response, handled bool, err error) {
	st := &c.sasl
	switch req.Key {
	case int16(kmsg.ApiVersions):
		return nil, false, nil
	case int16(kmsg.SASLHandshake):
		return c.saslHandshake(req)
	case int16(kmsg.SASLAuthenticate):
		return c.saslAuthenticate(req)
	}
	if !st.authenticated || st.exchange != nil {
		// SaslServerAuthenticator.handleKafkaRequest: any other request before the
		// exchange completes is an illegal SASL state, and the connection is closed.
		return nil, true, &errAuth{fmt.Sprintf("%s before SASL authentication completed", kmsg.NameForKey(req.Key))}
	}
	if !st.expires.IsZero() && time.Now().After(st.expires) {
		// KIP-368: a request after the session expired closes the connection.
		return nil, true, &errAuth{"SASL session expired without re-authentication"}
	}
	return nil, false, nil
}

func (c *conn) saslHandshake(req *Request) (Response, bool, error) {
	st := &c.sasl
	r := req.Body.(*kmsg.SASLHandshakeRequest)
	resp := r.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = c.mechanisms()
	if st.exchange != nil {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, true, &errAuth{"SaslHandshake during a SASL exchange"}
	}
	if st.authenticated && (req.Version < 1 || r.Mechanism != st.mechanism) {
		// KIP-368: re-authentication uses v1 and the mechanism of the first one.
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, true, &errAuth{"re-authentication must use SaslHandshake v1 and the same mechanism"}
	}
	if !slices.Contains(resp.SupportedMechanisms, r.Mechanism) {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return resp, true, &errAuth{fmt.Sprintf("SASL mechanism %q not enabled on this connection", r.Mechanism)}
	}
	ex, err := auth.NewExchange(r.Mechanism, c.s.cfg.Security.Credentials)
	if err != nil {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return resp, true, &errAuth{err.Error()}
	}
	st.exchange = ex
	st.raw = req.Version == 0
	return resp, true, nil
}

func (c *conn) saslAuthenticate(req *Request) (Response, bool, error) {
	st := &c.sasl
	r := req.Body.(*kmsg.SASLAuthenticateRequest)
	resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if st.exchange == nil || st.raw {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		msg := "SaslAuthenticate without a SaslHandshake v1 first"
		resp.ErrorMessage = &msg
		return resp, true, &errAuth{msg}
	}
	challenge, done, err := c.saslStep(r.SASLAuthBytes)
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		// Kafka's text, which names the mechanism and nothing the client sent.
		msg := fmt.Sprintf("Authentication failed during authentication due to invalid credentials with SASL mechanism %s", st.mechanismOf())
		resp.ErrorMessage = &msg
		return resp, true, err
	}
	resp.SASLAuthBytes = challenge
	if done && !st.expires.IsZero() {
		resp.SessionLifetimeMillis = time.Until(st.expires).Milliseconds()
	}
	return resp, true, nil
}

func (st *saslState) mechanismOf() string {
	if st.exchange != nil {
		return st.exchange.Mechanism()
	}
	return st.mechanism
}

// saslRawToken answers a bare token after a v0 handshake. A failure has no way to say so
// on the wire: Kafka closes the connection.
func (c *conn) saslRawToken(frame []byte) (Response, error) {
	challenge, _, err := c.saslStep(frame)
	if err != nil {
		return nil, err
	}
	if challenge == nil {
		challenge = []byte{}
	}
	return rawToken(challenge), nil
}

// saslStep feeds one token to the exchange and opens the session when it completes.
func (c *conn) saslStep(token []byte) ([]byte, bool, error) {
	st := &c.sasl
	mech := st.exchange.Mechanism()
	challenge, done, err := st.exchange.Step(token)
	if err != nil {
		// Kafka's message names the mechanism it was using, also when the exchange fails.
		st.exchange, st.mechanism = nil, mech
		// auth's errors are fixed texts ("nonce mismatch", "invalid proof"): never a token.
		return nil, false, &errAuth{fmt.Sprintf("SASL %s: %v", mech, err)}
	}
	if !done {
		return challenge, false, nil
	}
	user := st.exchange.User()
	st.exchange, st.raw = nil, false
	if st.authenticated && user != st.user {
		// KIP-368: a re-authentication may not change who the connection is.
		return nil, false, &errAuth{fmt.Sprintf("re-authentication changed the principal (mechanism %s)", mech)}
	}
	st.authenticated, st.mechanism, st.user = true, mech, user
	if d := c.s.cfg.Security.MaxReauth; d > 0 {
		st.expires = time.Now().Add(d)
	}
	c.info.Principal = auth.UserPrincipal(user)
	return challenge, true, nil
}

// withSASLVersions adds the SASL APIs to an ApiVersions answer. The handler's key list may
// be shared, so the answer gets a copy.
func withSASLVersions(resp Response) Response {
	av, ok := resp.(*kmsg.ApiVersionsResponse)
	if !ok {
		return resp
	}
	for _, k := range av.ApiKeys {
		if k.ApiKey == int16(kmsg.SASLHandshake) {
			return resp
		}
	}
	av.ApiKeys = append(slices.Clip(av.ApiKeys), saslAPIs...)
	return resp
}

// readRawToken reads a bare SASL token of size bytes and answers it.
func (c *conn) readRawToken(br *bufio.Reader, size int32) (Response, error) {
	if size < 0 || size > maxRawToken {
		return nil, &errAuth{fmt.Sprintf("SASL token of %d bytes", size)}
	}
	tok := make([]byte, size)
	if _, err := io.ReadFull(br, tok); err != nil {
		return nil, err
	}
	return c.saslRawToken(tok)
}

// maxRawToken bounds a bare SASL token; Kafka's SaslServerAuthenticator allows
// sasl.server.max.receive.size, 512 KiB.
const maxRawToken = 512 << 10

// enqueue hands an answer to the writer.
func (c *conn) enqueue(queue chan<- queued, q queued) error {
	select {
	case queue <- q:
		return nil
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}

// logAuthFailure logs a refused authentication once, with the client's address and the
// reason, never with what the client sent.
func (c *conn) logAuthFailure(err error) {
	var ae *errAuth
	if !errors.As(err, &ae) {
		return
	}
	c.s.cfg.Logger.Warn("closing kafka connection: authentication failed", "remote", c.info.Remote.String(), "reason", ae.reason)
	if m := c.s.cfg.Metrics; m != nil {
		m.badFrames.WithLabelValues("auth").Inc()
	}
}
