package daemon_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsgate/wsgate/testkit/testserver"
)

// adminToken is the admin listener's bearer token in these tests.
const adminToken = "3b9f2c71d8a04e6f95c1a7d2e8b04f63"

// adminDo sends one request to the admin listener with the given Host,
// headers and body, and returns the status.
func adminDo(t *testing.T, s *testserver.Server, method, path, host string, body string, h http.Header) int {
	t.Helper()
	req, err := http.NewRequest(method, adminURL(s)+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdminAgainstBrowsers: the admin listener answers only to its own
// names (421 otherwise: DNS rebinding), takes control requests only as
// application/json and from no foreign Origin (403: a cross-site form or
// fetch), bounds bodies and connections. Before, a page on another
// origin could reload the daemon and publish to any room.
func TestAdminAgainstBrowsers(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600)
	s := start(t, fmt.Sprintf(`
listen: [{address: 127.0.0.1:0}]
admin: {listen: 127.0.0.1:0, hosts: [ops.example], max_body: 64KiB, max_connections: 8, body_timeout: 1s,
        auth: {bearer_token_file: %s, public_reads: true}}
routes: [{path: /echo, app: echo}]
`, tokenFile))
	_, port, _ := net.SplitHostPort(s.AdminAddr().String())
	bearer := "Bearer " + adminToken
	json := http.Header{"Content-Type": {"application/json"}, "Authorization": {bearer}}
	publish := `{"items":[{"channel":"c","formats":{"ws-message":{"content":"x"}}}]}`
	for _, tc := range []struct {
		name, method, path, host, body string
		h                              http.Header
		want                           int
	}{
		{"status by address", "GET", "/status.json", "", "", nil, 200},
		{"metrics by localhost", "GET", "/metrics", "localhost:" + port, "", nil, 200},
		{"a configured name", "GET", "/healthz", "ops.example:" + port, "", nil, 200},
		{"a rebound name", "GET", "/status.json", "attacker.example:" + port, "", nil, 421},
		{"another port", "GET", "/status.json", "127.0.0.1:1", "", nil, 421},
		{"reload as text/plain", "POST", "/reload", "", "x", http.Header{"Content-Type": {"text/plain"}, "Authorization": {bearer}}, 403},
		{"reload without a type", "POST", "/reload", "", "", http.Header{"Authorization": {bearer}}, 403},
		{"reload from a foreign page", "POST", "/reload", "", "{}", http.Header{"Content-Type": {"application/json"}, "Origin": {"http://attacker.example"}, "Authorization": {bearer}}, 403},
		{"publish as a form", "POST", "/publish/", "", "items=x", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Authorization": {bearer}}, 403},
		{"publish as JSON", "POST", "/publish/", "", publish, json, 200},
		{"a body over max_body", "POST", "/publish/", "", `{"items":[{"channel":"c","formats":{"ws-message":{"content":"` + strings.Repeat("x", 70<<10) + `"}}}]}`, json, 413},
		// Reached: this test's daemon has no file to reload from.
		{"reload as JSON", "POST", "/reload", "", "", json, 422},
	} {
		if got := adminDo(t, s, tc.method, tc.path, tc.host, tc.body, tc.h); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	// The status page's WebSocket: its own origin only, under its names.
	for _, tc := range []struct {
		name   string
		h      http.Header
		status int
	}{
		{"own origin", http.Header{"Origin": {"http://" + s.AdminAddr().String()}}, 101},
		{"foreign origin", http.Header{"Origin": {"http://attacker.example"}}, 403},
		{"rebound name", http.Header{"Origin": {"http://attacker.example:" + port}, "Host": {"attacker.example:" + port}}, 421},
	} {
		c, resp, err := websocket.DefaultDialer.Dial("ws://"+s.AdminAddr().String()+"/status/ws", tc.h)
		if c != nil {
			c.Close()
		}
		if resp == nil || resp.StatusCode != tc.status {
			t.Errorf("status WebSocket, %s: %v %v, want %d", tc.name, resp, err, tc.status)
		}
	}
	// A body that does not come within body_timeout ends the request.
	c, err := net.Dial("tcp", s.AdminAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "POST /publish/ HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", s.AdminAddr(), bearer)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("a body that never comes: %v, want the connection ended", err)
	}
	c.Close()
	// max_connections: the ninth connection held at once gets 503.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 8 {
		c, err := net.Dial("tcp", s.AdminAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	if !waitFor(10*time.Second, func() bool {
		c, err := net.Dial("tcp", s.AdminAddr().String())
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Second))
		b, _ := io.ReadAll(c)
		return strings.Contains(string(b), "503")
	}) {
		t.Error("a connection past admin.max_connections was not refused")
	}
}

// TestAdminFromAForeignPage: a page on another origin, opened in Chromium,
// tries what a page can: a simple cross-site POST to /reload and to
// /publish/ (text/plain, no preflight), and a WebSocket to the status
// feed. None of it reaches the daemon: no reload, nothing published.
func TestAdminFromAForeignPage(t *testing.T) {
	s := start(t, `
listen: [{address: 127.0.0.1:0}]
routes: [{path: /room, app: test-control}]
`)
	member, _, err := websocket.DefaultDialer.Dial(s.URL("/room"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	member.WriteMessage(websocket.TextMessage, []byte("join c"))
	member.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, p, err := member.ReadMessage(); err != nil || string(p) != "joined c" {
		t.Fatalf("join: %q %v", p, err)
	}
	admin := "http://" + s.AdminAddr().String()
	page := fmt.Sprintf(`<!doctype html><script>
window.result = (async () => {
  const out = {};
  for (const path of ["/reload", "/publish/"]) {
    try {
      await fetch(%[1]q + path, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
        body: '{"items":[{"channel":"c","formats":{"ws-message":{"content":"from the page"}}}]}'});
      out[path] = "sent";
    } catch (e) { out[path] = String(e); }
  }
  out.ws = await new Promise(done => {
    const ws = new WebSocket(%[1]q.replace("http", "ws") + "/status/ws");
    ws.onopen = () => done("open");
    ws.onerror = () => done("refused");
  });
  return JSON.stringify(out);
})();
</script>`, admin)
	site := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	})}
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	go site.Serve(ln)
	defer site.Close()
	b := openPage(t, "http://"+ln.Addr().String()+"/", ln.Addr().String())
	var result string
	b.eval(`(async () => { while (!window.result) await new Promise(r => setTimeout(r, 50)); return await window.result; })()`, &result)
	t.Logf("the page: %s", result)
	if !strings.Contains(result, `"ws":"refused"`) {
		t.Errorf("the status feed opened for a foreign page: %s", result)
	}
	text := s.Metrics(t)
	if n := testserver.Sample(text, `wsgate_config_reloads_total{result="ok"}`); n > 0 {
		t.Errorf("a foreign page reloaded the daemon %v times", n)
	}
	member.SetReadDeadline(time.Now().Add(time.Second))
	if _, p, err := member.ReadMessage(); err == nil {
		t.Errorf("a foreign page published %q", p)
	}
	if testserver.Sample(text, `wsgate_connections_refused_total{cause="admin_origin"}`) < 3 { // two POSTs and the WebSocket
		t.Errorf("the page's POSTs are not counted as refused:\n%s", testserver.Grep(text, "refused_total"))
	}
}
