package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// Network puts each node in a network namespace of its own, with one 10.x.y.z address on a
// veth whose other end is a port of a bridge in the root namespace. The bridge has the
// .1 address, so the test's clients (in the root namespace) reach every node, and nodes
// reach each other through the bridge. A cut takes a node's bridge port down; a slow link
// is a tbf rate limit on both ends of its veth (netem is not assumed to exist).
type Network struct {
	t      testing.TB
	bridge string
	prefix string // "10.x.y."
	nodes  []nsNode
}

type nsNode struct {
	ns, hostVeth, nodeVeth, ip string
}

var (
	netnsOnce sync.Once
	netnsErr  error
)

// NetnsSupport says why network namespaces cannot be used here, or nil if they can: it
// needs root, `ip netns add`, veth pairs and tc's tbf.
func NetnsSupport() error {
	netnsOnce.Do(func() {
		if os.Geteuid() != 0 {
			netnsErr = errors.New("not root")
			return
		}
		id := randomHex(3)
		ns, veth := "strandprobe-"+id, "sfp"+id
		defer run("ip", "netns", "del", ns)
		defer run("ip", "link", "del", veth)
		for _, args := range [][]string{
			{"ip", "netns", "add", ns},
			{"ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "n"},
			{"tc", "qdisc", "add", "dev", veth, "root", "tbf", "rate", "256kbit", "burst", "32kbit", "latency", "400ms"},
			{"ip", "link", "set", veth + "n", "netns", ns},
		} {
			if err := run(args...); err != nil {
				netnsErr = err
				return
			}
		}
	})
	return netnsErr
}

// NewNetwork makes a bridge and n namespaces; all removed when the test ends.
func NewNetwork(t testing.TB, n int) *Network {
	t.Helper()
	if err := NetnsSupport(); err != nil {
		t.Fatalf("network namespaces: %v", err)
	}
	id := randomHex(2)
	nw := &Network{t: t, bridge: "sfbr" + id, prefix: freeSubnet(t)}
	t.Cleanup(nw.remove)
	must := func(args ...string) {
		t.Helper()
		if err := run(args...); err != nil {
			t.Fatalf("network setup: %v", err)
		}
	}
	must("ip", "link", "add", nw.bridge, "type", "bridge")
	must("ip", "addr", "add", nw.prefix+"1/24", "dev", nw.bridge)
	must("ip", "link", "set", nw.bridge, "up")
	for i := 0; i < n; i++ {
		nd := nsNode{ns: fmt.Sprintf("strand-%s-%d", id, i+1), hostVeth: fmt.Sprintf("sf%s%dh", id, i+1),
			nodeVeth: fmt.Sprintf("sf%s%dn", id, i+1), ip: fmt.Sprintf("%s%d", nw.prefix, 11+i)}
		nw.nodes = append(nw.nodes, nd)
		must("ip", "netns", "add", nd.ns)
		must("ip", "link", "add", nd.hostVeth, "type", "veth", "peer", "name", nd.nodeVeth)
		must("ip", "link", "set", nd.nodeVeth, "netns", nd.ns)
		must("ip", "link", "set", nd.hostVeth, "master", nw.bridge)
		must("ip", "link", "set", nd.hostVeth, "up")
		must("ip", "-n", nd.ns, "addr", "add", nd.ip+"/24", "dev", nd.nodeVeth)
		must("ip", "-n", nd.ns, "link", "set", nd.nodeVeth, "up")
		must("ip", "-n", nd.ns, "link", "set", "lo", "up")
	}
	return nw
}

func (nw *Network) remove() {
	for _, nd := range nw.nodes {
		run("ip", "netns", "del", nd.ns) // takes the veth pair with it
		run("ip", "link", "del", nd.hostVeth)
	}
	run("ip", "link", "del", nw.bridge)
}

// IP is node i's address.
func (nw *Network) IP(i int) string { return nw.nodes[i].ip }

// Namespace is node i's namespace name.
func (nw *Network) Namespace(i int) string { return nw.nodes[i].ns }

// Cut isolates node i from every other node and from the clients.
func (nw *Network) Cut(i int) error { return run("ip", "link", "set", nw.nodes[i].hostVeth, "down") }

// Heal undoes Cut.
func (nw *Network) Heal(i int) error { return run("ip", "link", "set", nw.nodes[i].hostVeth, "up") }

// Slow limits node i's link to rate (e.g. "256kbit") in both directions.
func (nw *Network) Slow(i int, rate string) error {
	nd := nw.nodes[i]
	tbf := []string{"root", "tbf", "rate", rate, "burst", "32kbit", "latency", "500ms"}
	return errors.Join(
		run(append([]string{"tc", "qdisc", "replace", "dev", nd.hostVeth}, tbf...)...),
		run(append([]string{"tc", "-n", nd.ns, "qdisc", "replace", "dev", nd.nodeVeth}, tbf...)...))
}

// Unslow removes the rate limit of Slow.
func (nw *Network) Unslow(i int) error {
	nd := nw.nodes[i]
	return errors.Join(
		run("tc", "qdisc", "del", "dev", nd.hostVeth, "root"),
		run("tc", "-n", nd.ns, "qdisc", "del", "dev", nd.nodeVeth, "root"))
}

// freeSubnet picks a 10.x.y.0/24 that no address or route of this machine uses.
func freeSubnet(t testing.TB) string {
	out, _ := exec.Command("sh", "-c", "ip -4 addr; ip -4 route").CombinedOutput()
	for range 50 {
		x, _ := rand.Int(rand.Reader, big.NewInt(150))
		y, _ := rand.Int(rand.Reader, big.NewInt(256))
		prefix := fmt.Sprintf("10.%d.%d.", 100+x.Int64(), y.Int64())
		if !strings.Contains(string(out), prefix) && !strings.Contains(string(out), fmt.Sprintf("10.%d.0.0", 100+x.Int64())) {
			return prefix
		}
	}
	t.Fatal("no free 10.x.y.0/24 subnet found")
	return ""
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
