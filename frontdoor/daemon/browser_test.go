package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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

// TestDemoPageInChromium loads the demo page in headless Chromium and uses
// all three applications through it, the way a person would: it submits
// the echo form, watches the counter and presses Reset, and sends a chat
// message, which a Go client connected to the same route must receive.
func TestDemoPageInChromium(t *testing.T) {
	bin := chromium(t)
	ts := start(t, baseConfig)
	listener, _, err := websocket.DefaultDialer.Dial(ts.URL("/chat"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	profile, err := os.MkdirTemp("", "chromium-profile")
	if err != nil {
		t.Fatal(err)
	}
	// Chromium's helper processes may still write to the profile after the
	// browser is killed; removing it is best-effort.
	defer os.RemoveAll(profile)
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--user-data-dir="+profile,
		"http://"+ts.Addr+"/")
	stderr, _ := cmd.StderrPipe()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the browser and its helpers
		cmd.Wait()
	}()
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
	page := pageTarget(t, host, ts.Addr)
	cdp, _, err := websocket.DefaultDialer.Dial(page, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cdp.Close()

	script := `new Promise((resolve, reject) => {
  const $ = (id) => document.getElementById(id);
  const until = (cond, what, ms = 8000) => new Promise((ok, fail) => {
    const t0 = Date.now();
    const poll = () => cond() ? ok() : Date.now() - t0 > ms ? fail(new Error("timeout: " + what)) : setTimeout(poll, 20);
    poll();
  });
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
    return {name, counterBefore: before, counterAfter: Number($("inc-counter").textContent), echo: $("echo-log").textContent.slice(0, 60), extensions: $("echo-ext").textContent};
  })().then(resolve, reject);
})`
	type evalReply struct {
		ID    int `json:"id"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
		Result struct {
			Result struct {
				Value json.RawMessage `json:"value"`
			} `json:"result"`
			ExceptionDetails *struct {
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		} `json:"result"`
	}
	id := 0
	eval := func(expr string) evalReply {
		id++
		cdp.WriteJSON(map[string]any{"id": id, "method": "Runtime.evaluate", "params": map[string]any{
			"expression": expr, "awaitPromise": true, "returnByValue": true}})
		cdp.SetReadDeadline(time.Now().Add(30 * time.Second))
		for {
			var r evalReply
			if err := cdp.ReadJSON(&r); err != nil {
				t.Fatal(err)
			}
			if r.ID == id {
				return r
			}
		}
	}
	// The tab may still be navigating from about:blank; an evaluation in a
	// context that navigation destroys is reported as an error. Retry that.
	var reply evalReply
	for attempt := 0; ; attempt++ {
		reply = eval(script)
		if reply.Error == nil || attempt == 20 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if reply.Error != nil {
		t.Fatalf("DevTools: %s", reply.Error.Message)
	}
	if ex := reply.Result.ExceptionDetails; ex != nil {
		t.Fatalf("in the page: %s", ex.Exception.Description)
	}
	var v struct {
		Name          string  `json:"name"`
		CounterBefore float64 `json:"counterBefore"`
		CounterAfter  float64 `json:"counterAfter"`
		Echo          string  `json:"echo"`
		Extensions    string  `json:"extensions"`
	}
	if err := json.Unmarshal(reply.Result.Result.Value, &v); err != nil || v.Name == "" {
		t.Fatalf("page returned %s (%v)", reply.Result.Result.Value, err)
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
