package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// rfc7677 is the SCRAM-SHA-256 example exchange of RFC 7677 §3.
var rfc7677 = struct {
	user, password, clientFirst, serverNonce, serverFirst, clientFinal, serverFinal string
}{
	user: "user", password: "pencil",
	clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
	serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
	serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}

func rfcCredential(t testing.TB) ScramCredential {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	salted, err := ScramSHA256.SaltedPassword(rfc7677.password, salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	return ScramSHA256.CredentialFromSalted(salted, salt, 4096)
}

func rfcServer(t testing.TB) *scramServer {
	cred := rfcCredential(t)
	return &scramServer{mech: ScramSHA256, nonce: rfc7677.serverNonce, lookup: func(user string, m ScramMechanism) (ScramCredential, bool) {
		return cred, user == rfc7677.user && m == ScramSHA256
	}}
}

func TestScramRFC7677(t *testing.T) {
	s := rfcServer(t)
	got, err := s.step([]byte(rfc7677.clientFirst))
	if err != nil || string(got) != rfc7677.serverFirst {
		t.Fatalf("server-first = %q, %v; want %q", got, err, rfc7677.serverFirst)
	}
	got, err = s.step([]byte(rfc7677.clientFinal))
	if err != nil || string(got) != rfc7677.serverFinal {
		t.Fatalf("server-final = %q, %v; want %q", got, err, rfc7677.serverFinal)
	}
}

func TestScramRefusesBadExchanges(t *testing.T) {
	for _, tc := range []struct {
		name, first, final string
		want               error
	}{
		{"wrong nonce", rfc7677.clientFirst, strings.Replace(rfc7677.clientFinal, "hNlF$k0", "hNlF$k1", 1), ErrAuthentication},
		{"wrong proof", rfc7677.clientFirst, rfc7677.clientFinal[:len(rfc7677.clientFinal)-6] + "AAAAA=", ErrAuthentication},
		{"unknown user", "n,,n=nobody,r=rOprNGfwEbeRWgbNEkqO", rfc7677.clientFinal, ErrAuthentication},
		{"proof not base64", rfc7677.clientFirst, rfc7677.clientFinal[:len(rfc7677.clientFinal)-3] + "!!!", ErrBadSASLMessage},
		{"no proof", rfc7677.clientFirst, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", ErrBadSASLMessage},
		{"channel binding", "p=tls-unique,,n=user,r=abc", "", ErrBadSASLMessage},
		{"bad escape", "n,,n=us=er,r=abc", "", ErrBadSASLMessage},
		{"other authzid", "n,a=admin,n=user,r=abc", "", ErrAuthentication},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := rfcServer(t)
			_, err := s.step([]byte(tc.first))
			if err == nil {
				_, err = s.step([]byte(tc.final))
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "pencil") {
				t.Fatalf("error %q holds the password", err)
			}
		})
	}
}

func TestPlainChecksScramCredential(t *testing.T) {
	cred, err := ScramSHA512.NewScramCredential("s3cret", MinScramIterations)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(user string, m ScramMechanism) (ScramCredential, bool) {
		return cred, user == "alice" && m == ScramSHA512
	}
	for _, tc := range []struct {
		token string
		ok    bool
	}{
		{"\x00alice\x00s3cret", true},
		{"alice\x00alice\x00s3cret", true},
		{"\x00alice\x00wrong", false},
		{"bob\x00alice\x00s3cret", false},
		{"\x00bob\x00s3cret", false},
		{"alice\x00s3cret", false},
		{"", false},
	} {
		e, _ := NewExchange(MechanismPlain, lookup)
		_, done, err := e.Step([]byte(tc.token))
		if done != tc.ok || (err == nil) != tc.ok {
			t.Errorf("PLAIN %q: done %v err %v, want ok=%v", tc.token, done, err, tc.ok)
		}
		if tc.ok && e.User() != "alice" {
			t.Errorf("PLAIN %q: user %q", tc.token, e.User())
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error %q holds the password", err)
		}
	}
}

// FuzzSASLExchange feeds arbitrary client messages to every mechanism: no input may panic,
// and no input may authenticate without the password.
func FuzzSASLExchange(f *testing.F) {
	f.Add([]byte(rfc7677.clientFirst), []byte(rfc7677.clientFinal))
	f.Add([]byte("\x00user\x00pencil"), []byte(""))
	f.Add([]byte("n,,n=user,r=a"), []byte("c=biws,r=a,p=AAAA"))
	f.Fuzz(func(t *testing.T, first, final []byte) {
		cred := rfcCredential(t)
		lookup := func(user string, m ScramMechanism) (ScramCredential, bool) { return cred, user == "user" }
		for _, mech := range SupportedMechanisms {
			e, err := NewExchange(mech, lookup)
			if err != nil {
				t.Fatal(err)
			}
			_, done, err := e.Step(first)
			if err == nil && !done {
				_, done, _ = e.Step(final)
			}
			// Only the RFC's own final message (whose nonce needs our fixed server nonce,
			// which a random one never equals) or PLAIN with the password may succeed.
			if done && !(mech == MechanismPlain && strings.HasSuffix(string(first), "\x00pencil")) {
				t.Fatalf("%s authenticated from %q, %q", mech, first, final)
			}
		}
	})
}
