package broker

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strand-data/strand/internal/auth"
	"github.com/strand-data/strand/internal/cluster"
	"github.com/strand-data/strand/internal/kafka"
)

// DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554), answered as
// Kafka's ControllerApis and ScramControlManager answer them: one result per user, with
// Kafka's error codes and messages.

func (b *Broker) handleDescribeUserSCRAM(req *kafka.Request, r *kmsg.DescribeUserSCRAMCredentialsRequest) kafka.Response {
	resp := r.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !b.mayManageCredentials(req.Conn.Principal) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp
	}
	st := b.meta.State()
	var users []string
	seen := map[string]int{}
	if len(r.Users) == 0 {
		users = st.ScramUserNames() // no list (or an empty one) describes every user
	} else {
		for _, u := range r.Users {
			if seen[u.Name]++; seen[u.Name] == 1 {
				users = append(users, u.Name)
			}
		}
	}
	for _, u := range users {
		res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		res.User = u
		switch {
		case seen[u] > 1:
			res.ErrorCode = kerr.DuplicateResource.Code
			res.ErrorMessage = kmsg.StringPtr("Cannot describe SCRAM credentials for the same user twice in a single request: " + u)
		case len(st.ScramUsers[u]) == 0:
			res.ErrorCode = kerr.ResourceNotFound.Code
			res.ErrorMessage = kmsg.StringPtr("Attempt to describe a user credential that does not exist: " + u)
		default:
			for _, m := range []auth.ScramMechanism{auth.ScramSHA256, auth.ScramSHA512} {
				if c, ok := st.ScramCredential(u, m); ok {
					res.CredentialInfos = append(res.CredentialInfos, kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo{Mechanism: int8(m), Iterations: c.Iterations})
				}
			}
		}
		resp.Results = append(resp.Results, res)
	}
	return resp
}

func (b *Broker) handleAlterUserSCRAM(ctx context.Context, req *kafka.Request, r *kmsg.AlterUserSCRAMCredentialsRequest) kafka.Response {
	resp := r.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	type userAlter struct {
		upserts   []cluster.ScramUpsert
		deletions []cluster.ScramDeletion
		code      int16
		msg       string
	}
	var order []string
	byUser := map[string]*userAlter{}
	pairs := map[[2]string]int{}
	get := func(name string, m int8) *userAlter {
		u := byUser[name]
		if u == nil {
			u = &userAlter{}
			byUser[name] = u
			order = append(order, name)
		}
		pairs[[2]string{name, string(rune(m))}]++
		return u
	}
	fail := func(u *userAlter, code int16, msg string) {
		if u.code == 0 {
			u.code, u.msg = code, msg
		}
	}
	allowed := b.mayManageCredentials(req.Conn.Principal)
	for _, d := range r.Deletions {
		u := get(d.Name, d.Mechanism)
		m := auth.ScramMechanism(d.Mechanism)
		switch {
		case d.Name == "":
			fail(u, kerr.UnacceptableCredential.Code, "Username must not be empty")
		case !m.Valid():
			fail(u, kerr.UnsupportedSaslMechanism.Code, "Unknown SCRAM mechanism")
		default:
			u.deletions = append(u.deletions, cluster.ScramDeletion{User: d.Name, Mechanism: m})
		}
	}
	for _, up := range r.Upsertions {
		u := get(up.Name, up.Mechanism)
		m := auth.ScramMechanism(up.Mechanism)
		switch {
		case up.Name == "":
			fail(u, kerr.UnacceptableCredential.Code, "Username must not be empty")
		case !m.Valid():
			fail(u, kerr.UnsupportedSaslMechanism.Code, "Unknown SCRAM mechanism")
		case up.Iterations < auth.MinScramIterations:
			fail(u, kerr.UnacceptableCredential.Code, "Too few iterations")
		case up.Iterations > auth.MaxScramIterations:
			fail(u, kerr.UnacceptableCredential.Code, "Too many iterations")
		case len(up.Salt) == 0 || len(up.SaltedPassword) == 0:
			fail(u, kerr.UnacceptableCredential.Code, "Salt and salted password must not be empty")
		default:
			c := m.CredentialFromSalted(up.SaltedPassword, up.Salt, up.Iterations)
			u.upserts = append(u.upserts, cluster.ScramUpsert{User: up.Name, Mechanism: m, Credential: c})
		}
	}
	for p, n := range pairs {
		if n > 1 {
			fail(byUser[p[0]], kerr.DuplicateResource.Code, "A user credential cannot be altered twice in the same request")
		}
	}
	for _, name := range order {
		u := byUser[name]
		res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		res.User = name
		if !allowed {
			fail(u, kerr.ClusterAuthorizationFailed.Code, "")
		}
		if u.code == 0 {
			// Each user's changes commit together or not at all, as in Kafka.
			if err := b.meta.AlterScramCredentials(ctx, u.upserts, u.deletions); err != nil {
				if errors.Is(err, cluster.ErrScramCredentialNotFound) {
					fail(u, kerr.ResourceNotFound.Code, "Attempt to delete a user credential that does not exist")
				} else {
					fail(u, errorCode(err), err.Error())
				}
			}
		}
		res.ErrorCode = u.code
		if u.msg != "" {
			res.ErrorMessage = kmsg.StringPtr(u.msg)
		}
		resp.Results = append(resp.Results, res)
	}
	return resp
}
