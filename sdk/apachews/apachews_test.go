package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	_ "github.com/wsgate/wsgate/apps/all"
	"github.com/wsgate/wsgate/testkit/testserver"
)

// prefix is where TestMain installed libapachews (make install-apachews).
var prefix string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "apachews")
	if err != nil {
		panic(err)
	}
	prefix = filepath.Join(dir, "prefix")
	root, _ := filepath.Abs("../..")
	for _, target := range []string{"apachews", "install-apachews"} {
		cmd := exec.Command("make", "-s", "-C", root, target, "OUT="+filepath.Join(dir, "build"), "PREFIX="+prefix)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "make %s: %v\n%s", target, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles a producer written for apache-ws the way its users built
// theirs, with the flags pkg-config gives.
func build(t *testing.T, src string) string {
	t.Helper()
	pc := exec.Command("pkg-config", "--cflags", "--libs", "apachews")
	pc.Env = append(os.Environ(), "PKG_CONFIG_PATH="+filepath.Join(prefix, "lib", "pkgconfig"))
	flags, err := pc.Output()
	if err != nil {
		t.Fatalf("pkg-config apachews: %v", err)
	}
	bin := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), ".c"))
	args := append([]string{"-Wall", "-Wextra", "-Werror", "-o", bin, src}, strings.Fields(string(flags))...)
	args = append(args, "-Wl,-rpath,"+filepath.Join(prefix, "lib"))
	if out, err := exec.Command("cc", args...).CombinedOutput(); err != nil {
		t.Fatalf("cc %s: %v\n%s", src, err, out)
	}
	return bin
}

func run(t *testing.T, bin, sock string) {
	t.Helper()
	cmd := exec.Command(bin, sock)
	cmd.Stderr = os.Stderr
	testserver.RunProducer(t, cmd, sock)
}

// TestApacheWSProducers: producers written against apache-ws's library
// (testdata/*.c), compiled unchanged against libapachews, serve clients
// through the daemon's mux and per-client routes, with message boundaries
// and binary messages apache-ws could not carry.
func TestApacheWSProducers(t *testing.T) {
	dir := t.TempDir()
	run(t, build(t, "testdata/echo.c"), filepath.Join(dir, "echo.ws"))
	run(t, build(t, "testdata/chat.c"), filepath.Join(dir, "chat.ws"))
	d := testserver.ApacheWSGateway(t, dir)
	t.Run("chat broadcast", func(t *testing.T) {
		testserver.ApacheWSChat(t, d.URL("/chat"), "fr-CH, fr;q=0.9", "hi all", "said: hi all", 1)
	})
}

// TestOversizeSend: a send or broadcast larger than the route takes
// (max_message_size plus 64 KiB, from the gateway's HELLO) fails with -1
// and errno EMSGSIZE, writing nothing; the client stays and the next send
// arrives.
func TestOversizeSend(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "oversize.ws")
	run(t, build(t, "testdata/oversize.c"), sock)
	gw := testserver.Start(t, fmt.Sprintf("listen: [{address: 127.0.0.1:0}]\nroutes:\n  - {path: /o, max_message_size: 1KiB, backend: {socket: %s}}\n", sock))
	c, _ := testserver.Dial(t, gw.URL("/o"), nil)
	const limit = 1<<10 + 64<<10
	for _, step := range [][2]string{
		{fmt.Sprintf("send %d", limit), "refused"},
		{fmt.Sprintf("broadcast %d", limit), "refused"},
		{"send 3", "xxx"},
	} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(step[0])); err != nil {
			t.Fatal(err)
		}
		testserver.Expect(t, c, websocket.TextMessage, step[1])
	}
}
