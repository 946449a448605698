// Package natstest starts real NATS servers (Debian's nats-server) for
// tests: one, or a cluster routed on loopback.
package natstest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Node is one nats-server process (Debian's package), part of a
// cluster of the others on loopback.
type Node struct {
	port, clusterPort int
	cmd               *exec.Cmd
	dir               string
	routes            []int
}

// Binary returns nats-server's path, or skips the test (fails it under
// WSGATE_REQUIRE_PEERS) when it is not installed.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("nats-server")
	if err != nil {
		// Debian installs it in /usr/sbin, which a user's PATH may lack.
		path, err = exec.LookPath("/usr/sbin/nats-server")
	}
	if err != nil {
		if os.Getenv("WSGATE_REQUIRE_PEERS") != "" {
			t.Fatal("nats-server is not installed (Debian package nats-server); ./scripts/test.sh installs it")
		}
		t.Skip("nats-server is not installed")
	}
	return path
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartCluster starts n NATS servers routed to each other (n = 1: a
// single server), stopped when the test ends.
func StartCluster(t testing.TB, n int) []*Node {
	bin := Binary(t)
	nodes := make([]*Node, n)
	for i := range nodes {
		nodes[i] = &Node{port: freePort(t), clusterPort: freePort(t), dir: t.TempDir()}
	}
	for i, nd := range nodes {
		for j, o := range nodes {
			if i != j {
				nd.routes = append(nd.routes, o.clusterPort)
			}
		}
		nd.start(t, bin)
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.Stop()
		}
	})
	waitRouted(t, nodes)
	return nodes
}

// URL is the server's client URL.
func (nd *Node) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", nd.port) }

// Start starts the server (again, on the same ports).
func (nd *Node) Start(t testing.TB) {
	nd.start(t, Binary(t))
}

func (nd *Node) start(t testing.TB, bin string) {
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(nd.port)}
	if len(nd.routes) > 0 {
		var rs []string
		for _, p := range nd.routes {
			rs = append(rs, fmt.Sprintf("nats://127.0.0.1:%d", p))
		}
		args = append(args, "--cluster_name", "wsgate-test", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", nd.clusterPort),
			"--routes", strings.Join(rs, ","))
	}
	nd.cmd = exec.Command(bin, args...)
	log, _ := os.Create(filepath.Join(nd.dir, "nats.log"))
	nd.cmd.Stdout, nd.cmd.Stderr = log, log
	if err := nd.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", nd.port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(nd.dir, "nats.log"))
			t.Fatalf("nats-server did not listen: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server.
func (nd *Node) Stop() {
	if nd.cmd != nil && nd.cmd.Process != nil {
		nd.cmd.Process.Signal(syscall.SIGKILL)
		nd.cmd.Wait()
		nd.cmd = nil
	}
}

// waitRouted waits until every node knows the others: the cluster's
// routes are up.
func waitRouted(t testing.TB, nodes []*Node) {
	if len(nodes) < 2 {
		return
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		ok := true
		for _, nd := range nodes {
			if !routes(nd, len(nodes)-1) {
				ok = false
			}
		}
		if ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the NATS cluster did not form")
}

// routes reads the INFO a node sends every new client (NATS's text
// protocol) and says whether its connect_urls list the other nodes.
func routes(nd *Node, want int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", nd.port), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 4096)
	n, _ := c.Read(buf)
	// INFO {... "connect_urls":["127.0.0.1:p1","127.0.0.1:p2",...] ...}
	info := string(buf[:n])
	i := strings.Index(info, `"connect_urls":[`)
	if i < 0 {
		return false
	}
	rest := info[i:]
	return strings.Count(rest[:strings.Index(rest, "]")+1], "127.0.0.1:") >= want+1
}
