package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"

	"github.com/strand-data/strand/internal/auth"
)

// SCRAM credentials live in the metadata as Kafka keeps them (ScramControlManager): salt,
// iterations, StoredKey and ServerKey per user and mechanism, never a password. Every node
// checks SASL logins against its own copy.

// ScramUpsert sets one user's credential for one mechanism.
type ScramUpsert struct {
	User       string
	Mechanism  auth.ScramMechanism
	Credential auth.ScramCredential
}

// ScramDeletion removes one user's credential for one mechanism.
type ScramDeletion struct {
	User      string
	Mechanism auth.ScramMechanism
}

type cmdScramCredentials struct {
	Upserts   []ScramUpsert   `json:",omitempty"`
	Deletions []ScramDeletion `json:",omitempty"`
}

// ErrScramCredentialNotFound is a deletion of a credential that does not exist.
var ErrScramCredentialNotFound = errors.New("user credential does not exist")

// ScramCredential returns a user's credential for a mechanism.
func (s *State) ScramCredential(user string, m auth.ScramMechanism) (auth.ScramCredential, bool) {
	c, ok := s.ScramUsers[user][m]
	return c, ok
}

// ScramUserNames lists the users with SCRAM credentials, sorted.
func (s *State) ScramUserNames() []string {
	names := make([]string, 0, len(s.ScramUsers))
	for u := range s.ScramUsers {
		names = append(names, u)
	}
	sort.Strings(names)
	return names
}

// AlterScramCredentials applies upserts and deletions in one metadata command. The caller
// checked them against Kafka's rules; deletions of credentials that do not exist are
// refused here, against the state the node sees.
func (n *Node) AlterScramCredentials(ctx context.Context, upserts []ScramUpsert, deletions []ScramDeletion) error {
	st := n.State()
	for _, d := range deletions {
		if _, ok := st.ScramCredential(d.User, d.Mechanism); !ok {
			return fmt.Errorf("%w: %s %s", ErrScramCredentialNotFound, d.User, d.Mechanism)
		}
	}
	for _, u := range upserts {
		if u.User == "" || !u.Mechanism.Valid() || len(u.Credential.StoredKey) == 0 || len(u.Credential.ServerKey) == 0 {
			return fmt.Errorf("%w: incomplete SCRAM credential", ErrInvalidRequest)
		}
	}
	if len(upserts) == 0 && len(deletions) == 0 {
		return nil
	}
	_, err := n.propose(ctx, "scram-credentials", cmdScramCredentials{Upserts: upserts, Deletions: deletions})
	return err
}

// applyScramCredentials is deterministic on every node: deleting what is gone (a race with
// another deletion) is a no-op.
func applyScramCredentials(s *State, c cmdScramCredentials) {
	users := maps.Clone(s.ScramUsers)
	if users == nil {
		users = map[string]map[auth.ScramMechanism]auth.ScramCredential{}
	}
	edit := func(user string) map[auth.ScramMechanism]auth.ScramCredential {
		m := maps.Clone(users[user])
		if m == nil {
			m = map[auth.ScramMechanism]auth.ScramCredential{}
		}
		users[user] = m
		return m
	}
	for _, d := range c.Deletions {
		if _, ok := users[d.User][d.Mechanism]; !ok {
			continue
		}
		m := edit(d.User)
		delete(m, d.Mechanism)
		if len(m) == 0 {
			delete(users, d.User)
		}
	}
	for _, u := range c.Upserts {
		if u.User == "" || !u.Mechanism.Valid() {
			continue
		}
		edit(u.User)[u.Mechanism] = u.Credential
	}
	s.ScramUsers = users
}
