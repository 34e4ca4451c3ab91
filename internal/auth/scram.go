package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// ScramMechanism is a SCRAM hash, numbered as KIP-554's ScramMechanism (1 SCRAM-SHA-256,
// 2 SCRAM-SHA-512).
type ScramMechanism int8

const (
	ScramSHA256 ScramMechanism = 1
	ScramSHA512 ScramMechanism = 2
)

// Iteration bounds Kafka accepts for SCRAM credentials (ScramMechanism.minIterations and
// ControllerApis' MAX_ITERATIONS for AlterUserScramCredentials).
const (
	MinScramIterations = 4096
	MaxScramIterations = 16384
)

// ParseScramMechanism reads a SASL mechanism name.
func ParseScramMechanism(name string) (ScramMechanism, bool) {
	switch name {
	case "SCRAM-SHA-256":
		return ScramSHA256, true
	case "SCRAM-SHA-512":
		return ScramSHA512, true
	}
	return 0, false
}

// String is the SASL mechanism name.
func (m ScramMechanism) String() string {
	switch m {
	case ScramSHA256:
		return "SCRAM-SHA-256"
	case ScramSHA512:
		return "SCRAM-SHA-512"
	}
	return "UNKNOWN"
}

// Valid reports a known mechanism.
func (m ScramMechanism) Valid() bool { return m == ScramSHA256 || m == ScramSHA512 }

func (m ScramMechanism) hash() func() hash.Hash {
	if m == ScramSHA512 {
		return sha512.New
	}
	return sha256.New
}

// ScramCredential is what the server keeps of a password (RFC 5802 §3, Kafka's
// ScramCredential): enough to check a proof, not enough to make one.
type ScramCredential struct {
	Salt       []byte
	Iterations int32
	StoredKey  []byte
	ServerKey  []byte
}

// SaltedPassword is Hi(password, salt, i) of RFC 5802, PBKDF2 with the mechanism's HMAC.
// KIP-554 clients send it instead of the password.
func (m ScramMechanism) SaltedPassword(password string, salt []byte, iterations int32) ([]byte, error) {
	return pbkdf2.Key(m.hash(), password, salt, int(iterations), m.hash()().Size())
}

// CredentialFromSalted derives StoredKey and ServerKey from a salted password.
func (m ScramMechanism) CredentialFromSalted(salted, salt []byte, iterations int32) ScramCredential {
	clientKey := m.hmac(salted, []byte("Client Key"))
	return ScramCredential{Salt: salt, Iterations: iterations, StoredKey: m.sum(clientKey), ServerKey: m.hmac(salted, []byte("Server Key"))}
}

// NewScramCredential derives a credential from a password with a fresh random salt.
func (m ScramMechanism) NewScramCredential(password string, iterations int32) (ScramCredential, error) {
	salt := make([]byte, 32)
	rand.Read(salt)
	salted, err := m.SaltedPassword(password, salt, iterations)
	if err != nil {
		return ScramCredential{}, fmt.Errorf("derive %s credential: %w", m, err)
	}
	return m.CredentialFromSalted(salted, salt, iterations), nil
}

// CheckPassword reports whether password is the one c was made from.
func (m ScramMechanism) CheckPassword(c ScramCredential, password string) bool {
	salted, err := m.SaltedPassword(password, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	derived := m.CredentialFromSalted(salted, c.Salt, c.Iterations)
	return subtle.ConstantTimeCompare(derived.StoredKey, c.StoredKey) == 1
}

func (m ScramMechanism) hmac(key, msg []byte) []byte {
	h := hmac.New(m.hash(), key)
	h.Write(msg)
	return h.Sum(nil)
}

func (m ScramMechanism) sum(b []byte) []byte {
	h := m.hash()()
	h.Write(b)
	return h.Sum(nil)
}

// ErrAuthentication is a failed authentication: bad user, password, proof or nonce. Its
// text never holds a credential.
var ErrAuthentication = errors.New("authentication failed")

// ErrBadSASLMessage is a SASL message that does not parse.
var ErrBadSASLMessage = errors.New("malformed SASL message")

// scramServer is the server side of one SCRAM exchange (Kafka's ScramSaslServer): the
// client-first message gets server-first, client-final gets server-final.
type scramServer struct {
	mech   ScramMechanism
	lookup func(user string, m ScramMechanism) (ScramCredential, bool)
	nonce  string // our part of the nonce, for tests

	state           int // 0 awaiting client-first, 1 awaiting client-final, 2 done
	user            string
	clientFirstBare string
	serverFirst     string
	fullNonce       string
	cred            ScramCredential
	found           bool
}

// step answers one client message.
func (s *scramServer) step(msg []byte) ([]byte, error) {
	switch s.state {
	case 0:
		return s.clientFirst(string(msg))
	case 1:
		return s.clientFinal(string(msg))
	}
	return nil, fmt.Errorf("%w: exchange already complete", ErrBadSASLMessage)
}

func (s *scramServer) clientFirst(msg string) ([]byte, error) {
	// gs2-header: "n" or "y" (no channel binding) and an optional authzid; "p=" asks for
	// channel binding, which Kafka does not offer either.
	cb, rest, ok := strings.Cut(msg, ",")
	if !ok || (cb != "n" && cb != "y") {
		return nil, fmt.Errorf("%w: unsupported gs2 header", ErrBadSASLMessage)
	}
	authzid, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, fmt.Errorf("%w: truncated client-first", ErrBadSASLMessage)
	}
	fields := strings.Split(bare, ",")
	if len(fields) < 2 || !strings.HasPrefix(fields[0], "n=") || !strings.HasPrefix(fields[1], "r=") {
		return nil, fmt.Errorf("%w: client-first needs n= and r=", ErrBadSASLMessage)
	}
	user, err := scramUnescape(fields[0][2:])
	if err != nil {
		return nil, err
	}
	clientNonce := fields[1][2:]
	if clientNonce == "" || !printable(clientNonce) {
		return nil, fmt.Errorf("%w: bad client nonce", ErrBadSASLMessage)
	}
	// Kafka accepts an authorization id only when it names the authenticated user.
	if authzid != "" {
		a, err := scramUnescape(strings.TrimPrefix(authzid, "a="))
		if err != nil || !strings.HasPrefix(authzid, "a=") || a != user {
			return nil, fmt.Errorf("%w: authorization id is not the user", ErrAuthentication)
		}
	}
	s.user = user
	s.cred, s.found = s.lookup(user, s.mech)
	if !s.found {
		// Go on with a made-up salt, so a client cannot tell a missing user from a wrong
		// password by the exchange (Kafka's ScramSaslServer fails here; RFC 5802 §5.1
		// prefers not to say).
		s.cred = ScramCredential{Salt: s.mech.sum([]byte(user)), Iterations: MinScramIterations}
	}
	if s.nonce == "" {
		b := make([]byte, 24)
		rand.Read(b)
		s.nonce = base64.RawStdEncoding.EncodeToString(b)
	}
	s.fullNonce = clientNonce + s.nonce
	s.clientFirstBare = bare
	s.serverFirst = "r=" + s.fullNonce + ",s=" + base64.StdEncoding.EncodeToString(s.cred.Salt) + ",i=" + strconv.Itoa(int(s.cred.Iterations))
	s.state = 1
	return []byte(s.serverFirst), nil
}

func (s *scramServer) clientFinal(msg string) ([]byte, error) {
	s.state = 2
	withoutProof, proofField, ok := cutLast(msg, ",p=")
	if !ok {
		return nil, fmt.Errorf("%w: client-final needs p=", ErrBadSASLMessage)
	}
	fields := strings.Split(withoutProof, ",")
	if len(fields) < 2 || !strings.HasPrefix(fields[0], "c=") || !strings.HasPrefix(fields[1], "r=") {
		return nil, fmt.Errorf("%w: client-final needs c= and r=", ErrBadSASLMessage)
	}
	// Kafka's ScramSaslServer checks that the nonce ends with the one it sent, not that it
	// equals it: librdkafka sends its own nonce again in front of the combined one. The
	// proof covers the whole message, so this gives an attacker nothing.
	if !strings.HasSuffix(fields[1][2:], s.fullNonce) {
		return nil, fmt.Errorf("%w: nonce mismatch", ErrAuthentication)
	}
	proof, err := base64.StdEncoding.DecodeString(proofField)
	if err != nil {
		return nil, fmt.Errorf("%w: proof is not base64", ErrBadSASLMessage)
	}
	authMessage := []byte(s.clientFirstBare + "," + s.serverFirst + "," + withoutProof)
	clientSignature := s.mech.hmac(s.cred.StoredKey, authMessage)
	if !s.found || len(proof) != len(clientSignature) {
		return nil, fmt.Errorf("%w: invalid proof", ErrAuthentication)
	}
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ clientSignature[i]
	}
	if subtle.ConstantTimeCompare(s.mech.sum(clientKey), s.cred.StoredKey) != 1 {
		return nil, fmt.Errorf("%w: invalid proof", ErrAuthentication)
	}
	serverSignature := s.mech.hmac(s.cred.ServerKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSignature)), nil
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// scramUnescape decodes a saslname: "=2C" is a comma, "=3D" an equals sign, and any other
// "=" is an error (RFC 5802 §5.1).
func scramUnescape(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", fmt.Errorf("%w: bad escape in user name", ErrBadSASLMessage)
		}
		i += 2
	}
	return b.String(), nil
}

// printable is RFC 5802's printable: %x21-2B / %x2D-7E.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}
