package cluster

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/strand-data/strand/internal/auth"
)

func applyCommand(t *testing.T, f *fsm, index uint64, typ string, data any) {
	t.Helper()
	raw, _ := json.Marshal(data)
	entry, _ := json.Marshal(command{Type: typ, Data: raw})
	if res := f.Apply(&raft.Log{Index: index, Data: entry}).(applyResult); res.err != nil {
		t.Fatal(res.err)
	}
}

func TestScramCredentialsApplyAndSurviveSnapshots(t *testing.T) {
	f := newFSM()
	cred, err := auth.ScramSHA512.NewScramCredential("pw", auth.MinScramIterations)
	if err != nil {
		t.Fatal(err)
	}
	applyCommand(t, f, 1, "scram-credentials", cmdScramCredentials{Upserts: []ScramUpsert{
		{User: "alice", Mechanism: auth.ScramSHA512, Credential: cred},
		{User: "alice", Mechanism: auth.ScramSHA256, Credential: cred},
		{User: "bob", Mechanism: auth.ScramSHA256, Credential: cred},
	}})
	before := f.state.Load()
	applyCommand(t, f, 2, "scram-credentials", cmdScramCredentials{Deletions: []ScramDeletion{
		{User: "alice", Mechanism: auth.ScramSHA256}, {User: "bob", Mechanism: auth.ScramSHA256}, {User: "ghost", Mechanism: auth.ScramSHA256},
	}})
	st := f.state.Load()
	if got := st.ScramUserNames(); !reflect.DeepEqual(got, []string{"alice"}) {
		t.Fatalf("users %v", got)
	}
	if _, ok := before.ScramCredential("bob", auth.ScramSHA256); !ok {
		t.Fatal("an older State changed: states must be immutable")
	}
	if c, ok := st.ScramCredential("alice", auth.ScramSHA512); !ok || !auth.ScramSHA512.CheckPassword(c, "pw") {
		t.Fatal("alice's SCRAM-SHA-512 credential is gone or wrong")
	}

	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(st); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), `"pw"`) {
		t.Fatal("the snapshot holds the password")
	}
	restored := newFSM()
	if err := restored.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if c, ok := restored.state.Load().ScramCredential("alice", auth.ScramSHA512); !ok || !auth.ScramSHA512.CheckPassword(c, "pw") {
		t.Fatal("credential lost in the snapshot")
	}

	// A snapshot written before credentials existed loads with none.
	old := `{"ClusterID":"c","ControllerID":1,"Brokers":{},"Topics":{},"BrokerConfigs":{},"NextProducerID":0,"Version":3}`
	f2 := newFSM()
	if err := f2.Restore(io.NopCloser(strings.NewReader(old))); err != nil {
		t.Fatal(err)
	}
	if n := len(f2.state.Load().ScramUserNames()); n != 0 {
		t.Fatalf("%d users from an old snapshot", n)
	}
}
