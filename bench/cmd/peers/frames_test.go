package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"

	"github.com/wsgate/wsgate/bench/load"
)

// TestFramesPerMessage is the benchmark's fairness check: every server
// the harness measures, wsgate included, answers each echo with as few
// frames as its library sends for one message. The peers' code sends one
// frame per message (a Writer copied from a Reader, as coder's and
// gorilla's streaming examples do, would send more, and pay for frames the
// others do not send); where a library splits a message by its own
// default, the count is the library's and is pinned here with the reason.
// Each peer runs as the harness runs it, a process of its own. The counts
// are logged as a table.
func TestFramesPerMessage(t *testing.T) {
	dir := t.TempDir()
	peers := filepath.Join(dir, "peers")
	build := exec.Command("go", "build", "-o", peers, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building peers: %v\n%s", err, out)
	}
	servers := map[string]string{"wsgate": startWsgate(t)}
	for _, name := range []string{"gorilla", "coder", "gws", "nbio"} {
		addr := freeAddr(t)
		cmd := exec.Command(peers, "-server", name, "-addr", addr)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		servers[name] = addr
	}
	// The libraries' own splits: nbio's engine cuts frames at its
	// MaxWebsocketFramePayloadSize (32 KiB by default), and gorilla's
	// compressing writer flushes a frame per write buffer.
	want := map[string][5]int{
		"wsgate":  {1, 1, 1, 1, 1},
		"gorilla": {1, 1, 1, 1, 3},
		"coder":   {1, 1, 1, 1, 1},
		"gws":     {1, 1, 1, 1, 1},
		"nbio":    {1, 1, 2, 1, 1},
	}
	var table strings.Builder
	table.WriteString("\n| server | 16 B | 1 KiB | 64 KiB | deflate 1 KiB | deflate 64 KiB |\n|---|---|---|---|---|---|\n")
	for _, name := range []string{"wsgate", "gorilla", "coder", "gws", "nbio"} {
		addr := servers[name]
		waitListening(t, addr)
		var got [5]int
		for i, n := range []int{16, 1 << 10, 64 << 10} {
			got[i] = echoFrames(t, addr, "/echo", n, false)
		}
		for i, n := range []int{1 << 10, 64 << 10} {
			got[3+i] = echoFrames(t, addr, "/echo-deflate", n, true)
		}
		fmt.Fprintf(&table, "| %s | %d | %d | %d | %d | %d |\n", name, got[0], got[1], got[2], got[3], got[4])
		if got != want[name] {
			t.Errorf("%s answers with %v frames, want %v (16 B, 1 KiB, 64 KiB, deflate 1 KiB, deflate 64 KiB)", name, got, want[name])
		}
	}
	t.Log(table.String())
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListening(t *testing.T, addr string) {
	for range 200 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

// startWsgate builds the daemon and runs it with the harness's routes.
func startWsgate(t *testing.T) string {
	dir := t.TempDir()
	bin := filepath.Join(dir, "wsgate")
	build := exec.Command("go", "build", "-o", bin, "./cmd/wsgate")
	build.Dir = "../../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building wsgate: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "wsgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: [{address: %q}]
admin: {listen: "off"}
defaults: {origin_check: "off", max_message_size: 1MiB}
routes:
  - {path: /echo, app: echo}
  - {path: /echo-deflate, app: echo, deflate: true}
`, addr)), 0o644)
	cmd := exec.Command(bin, "-config", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return addr
}

// echoFrames sends one n-byte binary message (compressed, with the
// no-context-takeover deflate the harness negotiates) and counts the
// frames of the answer.
func echoFrames(t *testing.T, addr, path string, n int, deflate bool) int {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	ext := ""
	if deflate {
		ext = load.Deflate
	}
	c, err := load.Handshake(nc, addr, path, ext, 4096)
	if err != nil {
		t.Fatalf("%s%s: %v", addr, path, err)
	}
	payload := load.Payload(n)
	if deflate {
		if !strings.Contains(c.Extensions, "permessage-deflate") {
			t.Fatalf("%s%s: no permessage-deflate (%q)", addr, path, c.Extensions)
		}
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, flate.BestSpeed)
		w.Write(payload)
		w.Flush()
		payload = bytes.TrimSuffix(z.Bytes(), []byte{0, 0, 0xff, 0xff})
	}
	if _, err := nc.Write(load.Frame(0x2, payload, deflate)); err != nil {
		t.Fatal(err)
	}
	// The load package's reader has read the handshake; the frames follow
	// in what it buffered and on the socket.
	br := bufio.NewReader(io.MultiReader(c.Buffered(), nc))
	for frames := 1; ; frames++ {
		fin, err := skipFrame(br)
		if err != nil {
			t.Fatalf("%s%s, %d bytes: frame %d: %v", addr, path, n, frames, err)
		}
		if fin {
			return frames
		}
	}
}

// skipFrame reads one unmasked server frame and reports whether it ends a
// message.
func skipFrame(br *bufio.Reader) (fin bool, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return false, err
	}
	if h[1]&0x80 != 0 {
		return false, fmt.Errorf("a masked frame from the server")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return false, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return false, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
		return false, err
	}
	return h[0]&0x80 != 0, nil
}
