// Package program serves each WebSocket client with its own process, as
// websocketd does: the client's messages go to the program's stdin and
// what it writes to stdout comes back as messages.
package program

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/bufpool"
	"github.com/wsgate/wsgate/internal/recovered"
	"github.com/wsgate/wsgate/websocket"
)

// Config is a route's program.
type Config struct {
	// Command is the program and its arguments; no shell is involved.
	Command []string
	// Dir is the working directory; empty means the gateway's.
	Dir string
	// Env holds extra environment variables (NAME=value). The program gets
	// these, PATH, and the CGI-like variables describing the request.
	Env []string
	// Binary: each read from stdout is one binary message and messages are
	// written to stdin as they are. Otherwise (line mode) each line of
	// stdout is one text message and each message is written to stdin
	// followed by a newline.
	Binary bool
	// MaxProcesses bounds the route's concurrent processes; beyond it new
	// clients are refused with 503.
	MaxProcesses int
	// KillGrace is how long a program gets after SIGTERM before SIGKILL.
	KillGrace time.Duration
}

// Defaults.
const (
	DefaultMaxProcesses = 64
	DefaultKillGrace    = 2 * time.Second
)

// Program is a gateway.Handler running one process per client.
type Program struct {
	cfg     Config
	log     *slog.Logger
	maxMsg  int64
	running atomic.Int64
	wg      sync.WaitGroup
}

// New checks the configuration.
func New(cfg Config) (*Program, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, errors.New("program command is empty")
	}
	if cfg.MaxProcesses <= 0 {
		cfg.MaxProcesses = DefaultMaxProcesses
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = DefaultKillGrace
	}
	for _, e := range cfg.Env {
		if !strings.Contains(e, "=") {
			return nil, fmt.Errorf("environment entry %q is not NAME=value", e)
		}
	}
	return &Program{cfg: cfg, log: slog.Default()}, nil
}

// Config returns the program's configuration, with defaults applied.
func (p *Program) Config() Config { return p.cfg }

// Validate checks that the command can be found.
func (p *Program) Validate() error {
	if _, err := exec.LookPath(p.cfg.Command[0]); err != nil {
		return fmt.Errorf("program %s: %w", p.cfg.Command[0], err)
	}
	return nil
}

// Provision learns the route's limits.
func (p *Program) Provision(ctx gateway.AppContext) error {
	p.log = ctx.Logger.With("program", p.cfg.Command[0])
	p.maxMsg = ctx.Route.Policy.MaxMessageSize
	if p.maxMsg <= 0 {
		p.maxMsg = websocket.DefaultMaxMessageSize
	}
	return nil
}

// Running returns the number of processes running.
func (p *Program) Running() int { return int(p.running.Load()) }

// Stop waits for the processes of clients that have gone to be reaped,
// or for ctx.
func (p *Program) Stop(ctx context.Context) error {
	done := make(chan struct{})
	recovered.Go("program stop", func() { p.wg.Wait(); close(done) })
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d processes still running", p.running.Load())
	}
}

type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	wmu    sync.Mutex
	gone   chan struct{} // closed when the process has exited
	ended  atomic.Bool   // the client has gone
	stderr chan struct{} // closed when stderr has been read to EOF
}

// env builds the CGI-like environment of a client's process.
func (p *Program) env(c *gateway.Conn) []string {
	r := c.Request()
	env := []string{"PATH=" + os.Getenv("PATH"), "GATEWAY_INTERFACE=CGI/1.1", "SERVER_SOFTWARE=wsgate",
		"SERVER_PROTOCOL=HTTP/1.1", "REQUEST_METHOD=GET"}
	uri := r.Path
	if r.RawQuery != "" {
		uri += "?" + r.RawQuery
	}
	script := strings.TrimSuffix(c.Route().Path, "/")
	env = append(env, "REQUEST_URI="+uri, "SCRIPT_NAME="+script, "PATH_INFO="+strings.TrimPrefix(r.Path, script),
		"QUERY_STRING="+r.RawQuery)
	if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		env = append(env, "REMOTE_ADDR="+host, "REMOTE_PORT="+port)
	} else {
		env = append(env, "REMOTE_ADDR="+r.RemoteAddr)
	}
	if host, port, err := net.SplitHostPort(r.Host); err == nil {
		env = append(env, "SERVER_NAME="+host, "SERVER_PORT="+port)
	} else {
		env = append(env, "SERVER_NAME="+r.Host)
	}
	if r.TLS != nil {
		env = append(env, "HTTPS=on")
	}
	if id := c.Identity(); id != nil {
		// As CGI (RFC 3875 §4.1.1, §4.1.11) and httpd give them.
		env = append(env, "AUTH_TYPE="+id.Method, "REMOTE_USER="+id.User)
	}
	env = append(env, "WEBSOCKET_PROTOCOLS="+strings.Join(r.Protocols, ","), "WEBSOCKET_SUBPROTOCOL="+c.Subprotocol())
	for k, vs := range r.Header() {
		name := "HTTP_" + strings.ToUpper(strings.ReplaceAll(k, "-", "_"))
		env = append(env, name+"="+strings.Join(vs, ", "))
	}
	return append(env, p.cfg.Env...)
}

// OnOpen starts the client's process, or refuses with 503 when the
// route runs MaxProcesses already or the program cannot start.
func (p *Program) OnOpen(ctx context.Context, c *gateway.Conn) error {
	if n := p.running.Add(1); n > int64(p.cfg.MaxProcesses) {
		p.running.Add(-1)
		return gateway.RefuseFor(http.StatusServiceUnavailable, gateway.CauseProcessLimit, fmt.Sprintf("%d processes running, the route's limit", p.cfg.MaxProcesses))
	}
	cmd := exec.Command(p.cfg.Command[0], p.cfg.Command[1:]...)
	cmd.Dir = p.cfg.Dir
	cmd.Env = p.env(c)
	// Its own process group, so the whole group can be killed when the
	// client goes, children included.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err1 := cmd.StdinPipe()
	stdout, err2 := cmd.StdoutPipe()
	stderr, err3 := cmd.StderrPipe()
	if err := errors.Join(err1, err2, err3); err != nil {
		p.running.Add(-1)
		return gateway.Refuse(http.StatusServiceUnavailable, err.Error())
	}
	if err := cmd.Start(); err != nil {
		p.running.Add(-1)
		p.log.Error("cannot start program", "err", err)
		return gateway.Refuse(http.StatusServiceUnavailable, "program cannot start")
	}
	pr := &proc{cmd: cmd, stdin: stdin, gone: make(chan struct{}), stderr: make(chan struct{})}
	c.SetState(pr)
	log := p.log.With("pid", cmd.Process.Pid, "conn", c.ID())
	p.wg.Add(1)
	recovered.Go("program stderr", func() {
		defer close(pr.stderr)
		p.logStderr(stderr, log)
	})
	go p.run(c, pr, stdout, log)
	return nil
}

// run relays stdout until EOF, reaps the process, then closes the client:
// 1000 when the program exited 0, 1011 otherwise.
func (p *Program) run(c *gateway.Conn, pr *proc, stdout io.Reader, log *slog.Logger) {
	defer p.wg.Done()
	defer func() {
		if v := recover(); v != nil {
			log.Error("program relay panicked", "panic", v, "stack", string(debug.Stack()))
			c.CloseFor(websocket.CauseInternalError, websocket.StatusInternalError, "internal error")
		}
	}()
	closeCode, reason := p.relay(c, stdout, log)
	if closeCode != 0 {
		// The client is closed now; the process goes when it does
		// (OnClose), and stdout is drained until then.
		c.Close(closeCode, reason)
		io.Copy(io.Discard, stdout)
	}
	// Wait closes the pipes: every read from them must be over first
	// (os/exec), or the last lines of stderr are lost.
	<-pr.stderr
	err := pr.cmd.Wait()
	p.running.Add(-1)
	close(pr.gone)
	if pr.ended.Load() || closeCode != 0 {
		return
	}
	closeCode = websocket.StatusNormalClosure
	if err != nil {
		closeCode, reason = websocket.StatusInternalError, "program failed"
		log.Warn("program exited", "err", err)
	}
	c.Close(closeCode, reason)
}

// relay turns stdout into messages. It returns a close code when it had to
// stop the client for what the program wrote.
func (p *Program) relay(c *gateway.Conn, stdout io.Reader, log *slog.Logger) (websocket.StatusCode, string) {
	if p.cfg.Binary {
		buf := make([]byte, min(int64(64<<10), p.maxMsg))
		for {
			n, err := stdout.Read(buf)
			if n > 0 {
				c.Send(websocket.BinaryMessage, buf[:n])
			}
			if err != nil {
				return 0, ""
			}
		}
	}
	sc := bufio.NewScanner(stdout)
	// The scanner's limit is the larger of max and the initial buffer's
	// capacity, so the buffer must not start above the limit.
	limit := int(min(p.maxMsg+1, 1<<30))
	sc.Buffer(make([]byte, min(4096, limit)), limit)
	for sc.Scan() {
		line := sc.Bytes()
		if !utf8.Valid(line) {
			log.Warn("program wrote a line that is not UTF-8")
			return websocket.StatusInternalError, "program wrote invalid UTF-8"
		}
		c.Send(websocket.TextMessage, line)
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return websocket.StatusMessageTooBig, "line over the size limit"
	}
	return 0, ""
}

func (p *Program) logStderr(stderr io.Reader, log *slog.Logger) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 1024), 64<<10)
	for sc.Scan() {
		log.Info("program stderr", "line", sc.Text())
	}
	io.Copy(io.Discard, stderr)
}

// OnMessage writes the message to the program's stdin.
func (p *Program) OnMessage(c *gateway.Conn, m gateway.Message) {
	pr, ok := c.State().(*proc)
	if !ok {
		return
	}
	pr.wmu.Lock()
	defer pr.wmu.Unlock()
	if p.cfg.Binary {
		pr.stdin.Write(m.Data)
		return
	}
	// m.Data points into the read buffer: appending to it in place could
	// overwrite bytes not parsed yet. Copy it with its newline.
	buf := bufpool.Get(len(m.Data) + 1)
	*buf = append(append(*buf, m.Data...), '\n')
	pr.stdin.Write(*buf)
	bufpool.Put(buf)
}

// OnClose ends the process: stdin is closed, then the process group
// gets SIGTERM and, if it is still there after KillGrace, SIGKILL.
func (p *Program) OnClose(c *gateway.Conn, _ websocket.CloseStatus) {
	pr, ok := c.State().(*proc)
	if !ok {
		return
	}
	pr.ended.Store(true)
	pr.stdin.Close()
	pgid := pr.cmd.Process.Pid
	select {
	case <-pr.gone:
		return
	default:
	}
	syscall.Kill(-pgid, syscall.SIGTERM)
	recovered.Go("program kill", func() {
		select {
		case <-pr.gone:
		case <-time.After(p.cfg.KillGrace):
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
	})
}

// KeepsHandshakeHeaders implements gateway.KeepsHandshakeHeaders: the
// seeds' handler programs saw every header field of the upgrade request.
func (*Program) KeepsHandshakeHeaders() {}
