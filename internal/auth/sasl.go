package auth

import (
	"bytes"
	"fmt"
	"slices"
)

// SASL mechanism names as clients send them in SaslHandshake.
const (
	MechanismPlain = "PLAIN"
)

// SupportedMechanisms are the SASL mechanisms Strand serves.
var SupportedMechanisms = []string{MechanismPlain, ScramSHA256.String(), ScramSHA512.String()}

// CredentialLookup finds a user's SCRAM credential for one mechanism.
type CredentialLookup func(user string, m ScramMechanism) (ScramCredential, bool)

// ValidateMechanisms checks a --sasl-mechanisms list.
func ValidateMechanisms(mechs []string) error {
	if len(mechs) == 0 {
		return fmt.Errorf("no SASL mechanism enabled")
	}
	for _, m := range mechs {
		if !slices.Contains(SupportedMechanisms, m) {
			return fmt.Errorf("SASL mechanism %q is not supported (want one of %v)", m, SupportedMechanisms)
		}
	}
	return nil
}

// Exchange is the server side of one SASL authentication: the client's tokens go to
// Step until it reports done. A failed step ends the exchange; Kafka then closes the
// connection.
type Exchange struct {
	mechanism string
	lookup    CredentialLookup
	scram     *scramServer
	user      string
	done      bool
}

// NewExchange starts an authentication with mechanism, which must be supported.
func NewExchange(mechanism string, lookup CredentialLookup) (*Exchange, error) {
	e := &Exchange{mechanism: mechanism, lookup: lookup}
	if m, ok := ParseScramMechanism(mechanism); ok {
		e.scram = &scramServer{mech: m, lookup: lookup}
	} else if mechanism != MechanismPlain {
		return nil, fmt.Errorf("SASL mechanism %q is not supported", mechanism)
	}
	return e, nil
}

// Mechanism is the exchange's mechanism name.
func (e *Exchange) Mechanism() string { return e.mechanism }

// Step answers the client's next token. done reports a successful authentication, after
// which User names the client; challenge is then the mechanism's last message (SCRAM's
// server-final), to send back.
func (e *Exchange) Step(token []byte) (challenge []byte, done bool, err error) {
	if e.done {
		return nil, false, fmt.Errorf("%w: authentication already complete", ErrBadSASLMessage)
	}
	if e.scram == nil {
		e.done = true
		user, err := e.plain(token)
		if err != nil {
			return nil, false, err
		}
		e.user = user
		return nil, true, nil
	}
	challenge, err = e.scram.step(token)
	if err != nil {
		e.done = true
		return nil, false, err
	}
	if e.scram.state == 2 {
		e.done, e.user = true, e.scram.user
		return challenge, true, nil
	}
	return challenge, false, nil
}

// User is the authenticated user name, once Step reported done.
func (e *Exchange) User() string { return e.user }

// plain checks a PLAIN message, authzid NUL authcid NUL password (RFC 4616, Kafka's
// PlainSaslServer), against the user's SCRAM credentials: Strand keeps no password, so it
// derives StoredKey from the offered one with the stored salt and compares.
func (e *Exchange) plain(msg []byte) (string, error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return "", fmt.Errorf("%w: PLAIN needs authzid, user and password separated by NUL", ErrBadSASLMessage)
	}
	authzid, user, password := string(parts[0]), string(parts[1]), string(parts[2])
	if user == "" || password == "" {
		return "", fmt.Errorf("%w: PLAIN with an empty user or password", ErrAuthentication)
	}
	if authzid != "" && authzid != user {
		return "", fmt.Errorf("%w: authorization id is not the user", ErrAuthentication)
	}
	for _, m := range []ScramMechanism{ScramSHA512, ScramSHA256} {
		if c, ok := e.lookup(user, m); ok {
			if m.CheckPassword(c, password) {
				return user, nil
			}
			return "", fmt.Errorf("%w: invalid credentials", ErrAuthentication)
		}
	}
	return "", fmt.Errorf("%w: invalid credentials", ErrAuthentication)
}
