package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/testkit/testserver"
	ws "github.com/wsgate/wsgate/testkit/wstest"
)

// chromium returns the path of a Chromium to drive.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missingPeer(t, "chromium (Debian chromium)")
	return ""
}

// browser is a headless Chromium showing one page, driven over the
// DevTools protocol.
type browser struct {
	t   *testing.T
	cdp *websocket.Conn
	id  int
}

type cdpReply struct {
	ID    int `json:"id"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
	Result json.RawMessage `json:"result"`
}

// openPage starts Chromium on url and connects to the tab; the browser is
// killed when the test ends.
func openPage(t *testing.T, url, addr string) *browser {
	bin := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	profile, err := os.MkdirTemp("", "chromium-profile")
	if err != nil {
		t.Fatal(err)
	}
	// Chromium's helper processes may still write to the profile after the
	// browser is killed; removing it is best-effort.
	t.Cleanup(func() { os.RemoveAll(profile) })
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--hide-scrollbars", "--window-size=1200,800",
		// The tests' certificates are self-signed (testcert); over http
		// this changes nothing.
		"--ignore-certificate-errors",
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--user-data-dir="+profile, url)
	stderr, _ := cmd.StderrPipe()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the browser and its helpers
		cmd.Wait()
	})
	devtools := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`DevTools listening on ws://([^/]+)/`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				devtools <- m[1]
			}
		}
	}()
	var host string
	select {
	case host = <-devtools:
	case <-ctx.Done():
		t.Fatal("chromium did not start its DevTools endpoint")
	}
	cdp, _, err := websocket.DefaultDialer.Dial(pageTarget(t, host, addr), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cdp.Close() })
	return &browser{t: t, cdp: cdp}
}

// call sends one DevTools command and returns its result.
func (b *browser) call(method string, params map[string]any) (json.RawMessage, error) {
	b.id++
	b.cdp.WriteJSON(map[string]any{"id": b.id, "method": method, "params": params})
	b.cdp.SetReadDeadline(time.Now().Add(60 * time.Second))
	for {
		var r cdpReply
		if err := b.cdp.ReadJSON(&r); err != nil {
			b.t.Fatal(err)
		}
		if r.ID == b.id {
			if r.Error != nil {
				return nil, errors.New(r.Error.Message)
			}
			return r.Result, nil
		}
	}
}

// eval runs a script (a promise is awaited) and decodes its value into v.
func (b *browser) eval(script string, v any) {
	b.t.Helper()
	var raw json.RawMessage
	var err error
	// The tab may still be navigating from about:blank; an evaluation in a
	// context that navigation destroys is reported as an error. Retry that.
	for attempt := 0; ; attempt++ {
		raw, err = b.call("Runtime.evaluate", map[string]any{"expression": script, "awaitPromise": true, "returnByValue": true})
		if err == nil || attempt == 20 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatalf("DevTools: %v", err)
	}
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	json.Unmarshal(raw, &r)
	if ex := r.ExceptionDetails; ex != nil {
		b.t.Fatalf("in the page: %s", ex.Exception.Description)
	}
	if err := json.Unmarshal(r.Result.Value, v); err != nil {
		b.t.Fatalf("page returned %s (%v)", r.Result.Value, err)
	}
}

// screenshot returns the page as a PNG.
func (b *browser) screenshot() []byte {
	b.t.Helper()
	raw, err := b.call("Page.captureScreenshot", map[string]any{"format": "png"})
	if err != nil {
		b.t.Fatal(err)
	}
	var r struct {
		Data []byte `json:"data"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || !bytes.HasPrefix(r.Data, []byte("\x89PNG")) {
		b.t.Fatalf("screenshot: %v", err)
	}
	return r.Data
}

// untilJS is the page-side helper the scripts wait with.
const untilJS = `const $ = (id) => document.getElementById(id);
  const until = (cond, what, ms = 8000) => new Promise((ok, fail) => {
    const t0 = Date.now();
    const poll = () => cond() ? ok() : Date.now() - t0 > ms ? fail(new Error("timeout: " + what)) : setTimeout(poll, 20);
    poll();
  });`

// TestDemoPageInChromium loads the demo page in headless Chromium and uses
// all three applications through it, the way a person would: it submits
// the echo form, watches the counter and presses Reset, and sends a chat
// message, which a Go client connected to the same route must receive.
// When a socket closes, the page shows the close code and reconnects.
// TestDemoPageInChromium drives the demo page over http and https; over
// https, Chromium's TLS (BoringSSL) talks to the record layer wsgate takes
// over after each upgrade (record_layer: wsgate).
func TestDemoPageInChromium(t *testing.T) {
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) { testDemoPage(t, scheme) })
	}
}

func testDemoPage(t *testing.T, scheme string) {
	conf, dialer := baseConfig, websocket.DefaultDialer
	if scheme == "https" {
		certFile, keyFile, pool := selfSigned(t)
		conf = strings.Replace(conf, "  - address: 127.0.0.1:0\n", fmt.Sprintf("  - address: 127.0.0.1:0\n    tls: {cert: %s, key: %s, record_layer: wsgate}\n", certFile, keyFile), 1)
		dialer = &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	ts := start(t, conf)
	before := ts.Front().TLSRecords["taken"]
	wsScheme := map[string]string{"http": "ws", "https": "wss"}[scheme]
	listener, _, err := dialer.Dial(wsScheme+"://"+ts.Addr+"/chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	b := openPage(t, scheme+"://"+ts.Addr+"/", ts.Addr)
	script := `new Promise((resolve, reject) => {
  ` + untilJS + `
  (async () => {
    await until(() => document.readyState === "complete" && $("echo-state") !== null, "page loaded");
    await until(() => $("echo-state").textContent === "open" && $("inc-state").textContent === "open" && $("chat-state").textContent === "open", "three sockets open");
    $("echo-input").value = "hello from chromium";
    $("echo-form").requestSubmit();
    await until(() => $("echo-log").textContent.includes("< hello from chromium"), "echo");
    const long = "compressible ".repeat(400);
    $("echo-input").value = long;
    $("echo-form").requestSubmit();
    await until(() => $("echo-log").textContent.includes("< " + long), "compressed echo");
    await until(() => Number($("inc-counter").textContent) >= 5, "counter reaches 5");
    const before = Number($("inc-counter").textContent);
    $("inc-reset").click();
    await until(() => Number($("inc-counter").textContent) < before - 2, "counter reset");
    const name = $("chat-name").value;
    $("chat-input").value = "hi from the browser";
    $("chat-form").requestSubmit();
    await until(() => $("chat-log").textContent.includes(name + ": hi from the browser"), "chat");
    const extensions = $("echo-ext").textContent;
    window.sockets.echo.ws.close(4000, "test");
    await until(() => $("echo-log").textContent.includes("closed: 1000 normal"), "close code shown");
    await until(() => $("echo-log").textContent.includes("reconnecting in"), "reconnecting");
    await until(() => $("echo-state").textContent === "open", "reconnected");
    return {name, counterBefore: before, counterAfter: Number($("inc-counter").textContent), echo: $("echo-log").textContent.slice(0, 60), extensions};
  })().then(resolve, reject);
})`
	var v struct {
		Name          string  `json:"name"`
		CounterBefore float64 `json:"counterBefore"`
		CounterAfter  float64 `json:"counterAfter"`
		Echo          string  `json:"echo"`
		Extensions    string  `json:"extensions"`
	}
	b.eval(script, &v)
	if v.Name == "" {
		t.Fatal("the page returned nothing")
	}
	t.Logf("browser: echo %q, counter %v -> %v, chat name %s, extensions %q", strings.TrimSpace(v.Echo), v.CounterBefore, v.CounterAfter, v.Name, v.Extensions)
	if !strings.HasPrefix(v.Extensions, "permessage-deflate") {
		t.Errorf("the browser did not negotiate permessage-deflate on /echo: %q", v.Extensions)
	}
	listener.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := listener.ReadMessage()
	if err != nil || string(msg) != v.Name+": hi from the browser" {
		t.Fatalf("Go client on /chat got %q %v", msg, err)
	}
	if scheme == "https" {
		// The Go listener, the page's three sockets and the reconnected echo.
		if n := ts.Front().TLSRecords["taken"] - before; n < 5 {
			t.Errorf("%d WebSockets taken over from crypto/tls, want 5 or more", n)
		}
	}
}

// TestStatusPageInChromium: the admin listener's status page, live over
// its WebSocket, shows the routes, their traffic, their refusals by cause
// and their close codes by name, the producer links, the uptime, the last
// reload, what memory means, and a ten-minute history it draws itself.
// With WSGATE_UPDATE_DOCS=1 its screenshot is written to docs/status.png.
// testsStarted is a moment after the daemon package's start time was set.
var testsStarted = time.Now()

// parseUptime reads the status page's "up for": "7s" or "2m 5s" (the
// tests do not run for the hours or days it would show otherwise).
func parseUptime(s string) (time.Duration, bool) {
	m := regexp.MustCompile(`^(?:(\d+)m )?(\d+)s$`).FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	mins, _ := strconv.Atoi(m[1])
	secs, _ := strconv.Atoi(m[2])
	return time.Duration(mins)*time.Minute + time.Duration(secs)*time.Second, true
}

func TestStatusPageInChromium(t *testing.T) {
	ts := start(t, `
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /echo, app: echo}
  - {path: /chat, app: chat}
  - {path: /p, backend: {socket: /nonexistent/p.sock, required: true}}
`)
	for range 3 {
		c, err := ws.Upgrade(ts.Addr, "/echo")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(ws.Text("hello"))
		c.ReadFrame()
	}
	c, _ := ws.Upgrade(ts.Addr, "/chat")
	c.Write(ws.Close(4000, "bye"))
	c.ReadUntilClose()
	c.Close()
	status(t, ts.Addr, ws.Request("/echo", "Origin: http://evil.example"))
	admin := ts.AdminAddr().String()
	b := openPage(t, "http://"+admin+"/", admin)
	// A reload that fails, for the page's last reload.
	bad, err := config.Parse("bad.yaml", []byte(`
listen: [{address: 127.0.0.1:0}]
routes:
  - {path: /echo, app: echo}
  - {path: /chat, app: chat}
  - {path: /p, backend: {socket: /nonexistent/p.sock, required: true}}
  - {path: /bad, program: {command: /nonexistent/program}}
`))
	if err != nil {
		t.Fatal(err)
	}
	bad.Admin.Address = "127.0.0.1:0"
	if err := ts.Reload(context.Background(), bad); err == nil {
		t.Fatal("a reload with a missing program succeeded")
	}
	var v struct {
		Routes int    `json:"routes"`
		Conn   string `json:"conn"`
		Open   string `json:"open"`
		Text   string `json:"text"`
		Links  int    `json:"links"`
		Ready  string `json:"ready"`
		Uptime string `json:"uptime"`
		Reload string `json:"reload"`
		Points string `json:"points"`
	}
	// The page's uptime is the process's: it started before this test
	// binary's variables were set, and the test may run minutes after.
	upFrom := time.Since(testsStarted)
	b.eval(`new Promise((resolve, reject) => {
  `+untilJS+`
  (async () => {
    await until(() => $("conn") && $("conn").textContent === "live", "live");
    await until(() => $("routes").tBodies[0].rows.length === 3, "routes shown");
    await until(() => $("open").textContent === "3", "open connections");
    await until(() => $("routes").textContent.includes("application codes ×1"), "close codes by name");
    await until(() => $("spark-open").dataset.points >= 2, "history drawn");
    return {routes: $("routes").tBodies[0].rows.length, conn: $("conn").textContent, open: $("open").textContent,
      text: document.body.innerText, links: $("links").tBodies[0].rows.length, ready: $("ready").textContent,
      uptime: $("uptime").textContent, reload: $("reload").textContent + " " + $("reloadinfo").textContent,
      points: $("spark-open").dataset.points};
  })().then(resolve, reject);
})`, &v)
	if v.Links != 1 || !strings.Contains(v.Ready, "is down") {
		t.Errorf("links %d, readiness %q", v.Links, v.Ready)
	}
	for _, want := range []string{"origin (403) ×1", "normal (1000)", "application codes", "what the Go runtime holds"} {
		if !strings.Contains(v.Text, want) {
			t.Errorf("the page does not show %q:\n%s", want, v.Text)
		}
	}
	upTo := time.Since(testsStarted)
	if up, ok := parseUptime(v.Uptime); !ok || up < upFrom.Truncate(time.Second)-time.Second || up > upTo+2*time.Second {
		t.Errorf("uptime %q, want between %v and %v", v.Uptime, upFrom.Round(time.Second), upTo.Round(time.Second))
	}
	if !strings.HasPrefix(v.Reload, "failed") || !strings.Contains(v.Reload, "0 ok, 1 failed") {
		t.Errorf("last reload %q", v.Reload)
	}
	png := b.screenshot()
	if os.Getenv("WSGATE_UPDATE_DOCS") != "" {
		if err := os.WriteFile("../../docs/status.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pageTarget finds the DevTools WebSocket of the tab showing the demo page.
func pageTarget(t *testing.T, devtools, addr string) string {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + devtools + "/json/list")
		if err == nil {
			var targets []struct {
				Type, URL            string
				WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
			}
			json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
			for _, tg := range targets {
				if tg.Type == "page" && strings.Contains(tg.URL, addr) {
					return tg.WebSocketDebuggerURL
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no page target for %s", addr)
	return ""
}

// TestProxyInChromium: Chromium, through the daemon, to an upstream
// written with Node's ws: the page's WebSocket gets the upstream's
// subprotocol, permessage-deflate with the daemon (the upstream has
// none), its messages back, and the upstream's close code.
func TestProxyInChromium(t *testing.T) {
	if _, err := os.Stat("../../apps/upstream/testdata/node/node_modules/ws"); err != nil {
		t.Fatal("Node's ws is not installed: run npm ci in apps/upstream/testdata/node (./scripts/test.sh does)")
	}
	node := exec.Command(testserver.Peer(t, "nodejs", "node"), "echo.js")
	node.Dir = "../../apps/upstream/testdata/node"
	port := testserver.StartReporting(t, node, `listening on (\d+)`)
	page := t.TempDir()
	os.WriteFile(page+"/index.html", []byte("<!doctype html><title>proxy</title><p>proxy test</p>"), 0o644)
	ts := start(t, fmt.Sprintf(`listen: [{address: 127.0.0.1:0}]
static: [{path: /page/, dir: %s}]
routes:
  - {path: /proxy, deflate: true, backend: {upstream: ["ws://127.0.0.1:%s/"]}}
`, page, port))
	b := openPage(t, "http://"+ts.Addr+"/page/", ts.Addr)
	// The tab may still be on about:blank: wait for the page first.
	var loaded bool
	b.eval(`new Promise((resolve, reject) => {
  `+untilJS+`
  until(() => location.pathname === "/page/" && document.readyState === "complete", "page loaded").then(() => resolve(true), reject);
})`, &loaded)
	script := `new Promise((resolve, reject) => {
  const ws = new WebSocket("ws://" + location.host + "/proxy", ["chat.v1", "chat.v2"]);
  const got = [];
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    ws.send("hello through the proxy");
    ws.send(new Uint8Array([0, 1, 2, 255]).buffer);
    ws.send("x".repeat(100000));
  };
  ws.onmessage = (e) => {
    got.push(typeof e.data === "string" ? e.data.slice(0, 30) + ":" + e.data.length : "bin:" + new Uint8Array(e.data).join(","));
    if (got.length === 3) ws.send("/close 4004 from node");
  };
  ws.onclose = (e) => resolve({protocol: ws.protocol, extensions: ws.extensions, got, code: e.code, reason: e.reason});
  ws.onerror = () => {};
  setTimeout(() => reject(new Error("timed out: " + JSON.stringify(got))), 20000);
})`
	var r struct {
		Protocol, Extensions, Reason string
		Got                          []string
		Code                         int
	}
	b.eval(script, &r)
	want := []string{"hello through the proxy:23", "bin:0,1,2,255", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx:100000"}
	if r.Protocol != "chat.v1" || !strings.HasPrefix(r.Extensions, "permessage-deflate") || fmt.Sprint(r.Got) != fmt.Sprint(want) ||
		r.Code != 4004 || r.Reason != "from node" {
		t.Errorf("the page saw %+v\n%s", r, ts.Logs)
	}
}
