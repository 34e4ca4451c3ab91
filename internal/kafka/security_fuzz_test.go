package kafka

import (
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/auth"
)

// FuzzSASLFrames drives a SASL connection's state machine with arbitrary frames, as the
// reader would hand them over: it must never panic and never authenticate without the
// password (PLAIN is off here, and a SCRAM proof cannot be guessed).
func FuzzSASLFrames(f *testing.F) {
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = "SCRAM-SHA-256"
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.SASLAuthBytes = []byte("n,,n=user,r=abc")
	var seed []byte
	for i, req := range []kmsg.Request{hs, au, au} {
		fr := frame(req.Key(), 1, int32(i), req)
		seed = append(seed, fr...)
	}
	f.Add(seed)
	f.Add(frame(17, 0, 1, hs))
	f.Add(append(frame(17, 0, 1, hs), 0, 0, 0, 3, 'n', ',', ','))
	cred, err := auth.ScramSHA256.NewScramCredential("pencil", auth.MinScramIterations)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		s := &Server{cfg: Config{Security: Security{SASL: true, Mechanisms: []string{"SCRAM-SHA-256", "SCRAM-SHA-512"},
			Credentials: func(user string, m auth.ScramMechanism) (auth.ScramCredential, bool) { return cred, user == "user" }}}.withDefaults()}
		c := &conn{s: s, info: ConnInfo{Principal: auth.Anonymous}}
		for len(stream) >= 4 {
			size := int(binary.BigEndian.Uint32(stream))
			stream = stream[4:]
			if size < 0 || size > len(stream) {
				return
			}
			fr := stream[:size]
			stream = stream[size:]
			if c.sasl.raw {
				if _, err := c.saslRawToken(fr); err != nil {
					return
				}
				continue
			}
			if size < 8 {
				return
			}
			req, fallback, err := decodeRequest(fr)
			if err != nil || fallback {
				return
			}
			if _, handled, err := c.gateSASL(req); err != nil || !handled {
				if err == nil && c.sasl.authenticated {
					t.Fatalf("a %s request was served after a fuzzed authentication", kmsg.NameForKey(req.Key))
				}
				return
			}
		}
		if c.sasl.authenticated || c.info.Principal != auth.Anonymous {
			t.Fatalf("authenticated as %q from fuzzed input", c.info.Principal)
		}
	})
}
