package daemon

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/recovered"
)

// A binary upgrade, as nginx does it on SIGUSR2: the running process
// starts a new one (the binary at the same path, which a package upgrade
// may have replaced) and hands it its listening sockets. Both accept on
// them for a moment; once the new process says it is serving, the old one
// stops accepting and finishes its connections, closing them with 1001
// after server.upgrade.drain_timeout ("close") or letting them end on
// their own ("keep"), and exits. No client is refused at any point: the
// sockets never close. If the new process fails to start, the old one
// keeps serving.

// upgradeTimeout bounds the wait for the new process to be ready.
const upgradeTimeout = time.Minute

// Upgrade starts exe with args as the new process, hands it the sockets,
// and waits until it is ready. It returns once the new process serves;
// the caller then calls Drain and exits.
func (s *Server) Upgrade(exe string, args []string) error {
	s.mu.Lock()
	var files []*os.File
	var addrs []string
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	add := func(ln net.Listener, network, address string) error {
		fl, ok := ln.(interface{ File() (*os.File, error) })
		if !ok {
			return fmt.Errorf("listener %s cannot be handed over", address)
		}
		f, err := fl.File()
		if err != nil {
			return err
		}
		files = append(files, f)
		addrs = append(addrs, network+"|"+address)
		return nil
	}
	var err error
	for _, l := range s.lns {
		if err = add(l.raw, l.cfg.Network, l.cfg.Address); err != nil {
			break
		}
	}
	cfg := s.cfg.Load()
	if err == nil && s.admin != nil {
		err = add(s.admin.raw, "admin-"+cfg.Admin.Network, cfg.Admin.Address)
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	ready, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	defer ready.Close()
	// A pipe on which this process, while it drains, tells the new one how
	// many connections it still has on each route: the new process's
	// metrics show them (wsgate_predecessor_connections_open), so that a
	// scraper, which now reaches only the new process, sees every client.
	reportR, reportW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return fmt.Errorf("upgrade: %w", err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = append(append([]*os.File{readyW}, files...), reportR)
	cmd.Env = append(os.Environ(), "WSGATE_UPGRADE_READY="+strconv.Itoa(upgradeReadyFd),
		"WSGATE_LISTEN_FDS="+strconv.Itoa(len(files)), "WSGATE_LISTEN_ADDRS="+strings.Join(addrs, ";"),
		"WSGATE_PREDECESSOR_FD="+strconv.Itoa(upgradeListenFrom+len(files)))
	s.log.Info("upgrade: starting the new process", "binary", exe, "sockets", len(files))
	if err := cmd.Start(); err != nil {
		readyW.Close()
		reportR.Close()
		reportW.Close()
		return fmt.Errorf("upgrade: %w", err)
	}
	readyW.Close()
	reportR.Close()
	exited := make(chan error, 1)
	recovered.Go("upgrade wait", func() { exited <- cmd.Wait() })
	said := make(chan string, 1)
	recovered.Go("upgrade ready", func() {
		line, _ := bufio.NewReader(ready).ReadString('\n')
		said <- strings.TrimSpace(line)
	})
	select {
	case line := <-said:
		if line != "ready" {
			err := <-exited
			return fmt.Errorf("upgrade: the new process (pid %d) exited before serving: %v", cmd.Process.Pid, err)
		}
	case err := <-exited:
		reportW.Close()
		return fmt.Errorf("upgrade: the new process exited before serving: %v", err)
	case <-time.After(upgradeTimeout):
		cmd.Process.Kill()
		reportW.Close()
		return fmt.Errorf("upgrade: the new process (pid %d) was not ready within %v; it was killed", cmd.Process.Pid, upgradeTimeout)
	}
	recovered.Go("upgrade report", func() { s.report(reportW) })
	// The new process serves: stop accepting. The sockets stay open in it.
	s.handedOver.Store(true)
	s.mu.Lock()
	s.closeListeners()
	s.mu.Unlock()
	if s.admin != nil {
		s.admin.ln.Close()
		// A scraper's kept-alive connection would stay on this process
		// for as long as it drains: idle ones are closed now, busy ones
		// after their answer, and the scraper's next connection reaches
		// the new process.
		s.admin.srv.SetKeepAlivesEnabled(false)
	}
	s.log.Info("upgrade: the new process serves; this one no longer accepts", "new_pid", cmd.Process.Pid, "connections", s.gw.Len())
	return nil
}

// report writes, every second until this process's connections are
// gone, a line with its open connections by route ("/echo 3\t/chat 0")
// to the process that replaced it, then closes w.
func (s *Server) report(w *os.File) {
	defer w.Close()
	for {
		var parts []string
		for _, r := range s.gw.Snapshot() {
			parts = append(parts, r.Route+" "+strconv.FormatUint(r.Open, 10))
		}
		if _, err := w.WriteString(strings.Join(parts, "\t") + "\n"); err != nil || s.gw.Len() == 0 {
			return
		}
		time.Sleep(time.Second)
	}
}

// readPredecessor reads what the process this one replaced reports (see
// report) into s.pred, until it ends.
func (s *Server) readPredecessor() {
	v := os.Getenv("WSGATE_PREDECESSOR_FD")
	if v == "" {
		return
	}
	os.Unsetenv("WSGATE_PREDECESSOR_FD")
	fd, err := strconv.Atoi(v)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "predecessor")
	recovered.Go("predecessor report", func() {
		defer f.Close()
		defer s.pred.Store(nil)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			m := map[string]uint64{}
			for _, part := range strings.Split(sc.Text(), "\t") {
				route, n, ok := strings.Cut(part, " ")
				if v, err := strconv.ParseUint(n, 10, 64); ok && err == nil {
					m[route] = v
				}
			}
			s.pred.Store(&m)
		}
	})
}

// Drain finishes this process's connections after an upgrade, as
// server.upgrade says: "close" lets them run for drain_timeout, then
// closes the rest with 1001; "keep" waits for them to end on their own.
// It then shuts the server down.
func (s *Server) Drain() error {
	cfg := s.cfg.Load().Server
	s.state.Store("draining")
	var deadline <-chan time.Time
	if cfg.UpgradeDrain != "keep" {
		t := time.NewTimer(cfg.UpgradeDrainTimeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
wait:
	for s.gw.Len() > 0 {
		select {
		case <-deadline:
			break wait
		case <-tick.C:
		}
	}
	s.log.Info("upgrade: closing this process's remaining connections", "connections", s.gw.Len())
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

// SignalReady tells whoever started this process that it serves: the
// wsgate it replaces (a binary upgrade), and systemd (READY=1, with
// MAINPID, since after an upgrade this process is the service's main
// one).
func (s *Server) SignalReady() {
	if v := os.Getenv("WSGATE_UPGRADE_READY"); v != "" {
		os.Unsetenv("WSGATE_UPGRADE_READY")
		if fd, err := strconv.Atoi(v); err == nil {
			f := os.NewFile(uintptr(fd), "upgrade-ready")
			f.Write([]byte("ready\n"))
			f.Close()
		}
	}
	sdNotify("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid()))
}
