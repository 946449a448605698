package producers_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gorilla/websocket"

	sdk "github.com/wsgate/wsgate/sdk/producer"
	"github.com/wsgate/wsgate/testkit/testserver"
)

// A logout: the application clears two cookies in the 101. Each needs a
// Set-Cookie header of its own (RFC 6265 §3: they cannot be joined), in
// the order written. The producers below are written as each SDK's users
// write them: the blocking API with a list of pairs, asyncio with a dict
// of lists, Go with http.Header.Add.
var logoutCookies = []string{"session=; Max-Age=0; Path=/", "remember_me=; Max-Age=0; Path=/"}

const pyBlockingLogout = `
import sys
from wsgate_producer import ACCEPT, IO, Server

server = Server(sys.argv[1])
print("listening", flush=True)
while True:
    ev = server.dequeue()
    if ev.type == ACCEPT:
        ev.accept("", [("Set-Cookie", %[1]q), ("Set-Cookie", %[2]q), ("X-Logged-Out", "yes")])
    elif ev.type == IO:
        ev.respond(ev.read())
`

const pyAioLogout = `
import asyncio, sys
from wsgate_producer.aio import Accept, Handler, serve

class Logout(Handler):
    async def on_open(self, client):
        return Accept(headers={"Set-Cookie": [%[1]q, %[2]q], "X-Logged-Out": "yes"})

    async def on_message(self, client, data):
        await client.send(data)

    async def on_close(self, client, code, reason):
        pass

asyncio.run(serve(sys.argv[1], Logout()))
`

type goLogout struct{}

func (goLogout) OnOpen(_ *sdk.Client, a *sdk.Accept) error {
	for _, c := range logoutCookies {
		a.Header.Add("Set-Cookie", c)
	}
	a.Header.Set("X-Logged-Out", "yes")
	return nil
}
func (goLogout) OnMessage(c *sdk.Client, t sdk.MessageType, d []byte) { c.Send(t, d) }
func (goLogout) OnClose(*sdk.Client, uint16, string)                  {}

func TestSeveralSetCookies(t *testing.T) {
	dir := t.TempDir()
	pysdk, _ := filepath.Abs("../../sdk/python")
	for name, src := range map[string]string{"py-blocking": pyBlockingLogout, "py-aio": pyAioLogout} {
		script := filepath.Join(dir, name+".py")
		if err := os.WriteFile(script, fmt.Appendf(nil, src, logoutCookies[0], logoutCookies[1]), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(python(t), script, filepath.Join(dir, name))
		cmd.Env = append(os.Environ(), "PYTHONPATH="+pysdk)
		testserver.RunProducer(t, cmd, filepath.Join(dir, name))
	}
	ln, err := sdk.Listen(filepath.Join(dir, "go"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &sdk.Server{Handler: goLogout{}}
	go srv.Serve(ln)
	t.Cleanup(func() { ln.Close() })
	gw := testserver.Start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /py-blocking, backend: {socket: %[1]s/py-blocking, mode: mux}}
  - {path: /py-blocking-pc, backend: {socket: %[1]s/py-blocking, mode: per-client}}
  - {path: /py-aio, backend: {socket: %[1]s/py-aio, mode: mux}}
  - {path: /go, backend: {socket: %[1]s/go, mode: mux}}
`, dir))
	for _, route := range []string{"/py-blocking", "/py-blocking-pc", "/py-aio", "/go"} {
		t.Run(route, func(t *testing.T) {
			c, resp, err := websocket.DefaultDialer.Dial(gw.URL(route), nil)
			if err != nil {
				t.Fatalf("dial: %v (%v)", err, resp)
			}
			defer c.Close()
			if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, logoutCookies) {
				t.Errorf("Set-Cookie %q, want %q", got, logoutCookies)
			}
			if got := resp.Header.Values("X-Logged-Out"); !slices.Equal(got, []string{"yes"}) {
				t.Errorf("X-Logged-Out %q", got)
			}
			c.WriteMessage(websocket.TextMessage, []byte("still here"))
			if got := read(t, c); got != "still here" {
				t.Errorf("echo %q", got)
			}
		})
	}
}
