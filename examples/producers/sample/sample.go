// Package sample gives the example producers ouistiti's sample-server
// options: -R <docroot>, -n <name>, -u <user>, -m <max clients>. The
// socket is <docroot>/<name>, mode 0777 so the gateway's user can connect;
// with -u the process drops to that user once the socket exists.
//
// A redeploy without dropping clients: start the new build with
// -takeover. It puts its socket in place of the running one's; the
// running one notices, drains (its clients move to the new one, see
// producer.Server.Drain) and exits.
package sample

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/sdk/direct"
	"github.com/wsgate/wsgate/sdk/producer"
)

// Options are the parsed flags.
type Options struct {
	Root       string
	Name       string
	User       string
	MaxClients int
	TakeOver   bool
}

// Flags registers the options on the default flag set; call flag.Parse
// after.
func Flags() *Options {
	o := &Options{}
	flag.StringVar(&o.Root, "R", "/var/run/websocket", "`directory` of the socket (the gateway's docroot)")
	flag.StringVar(&o.Name, "n", filepath.Base(os.Args[0]), "socket `name` in the directory")
	flag.StringVar(&o.User, "u", "", "`user` to run as once the socket is open")
	flag.IntVar(&o.MaxClients, "m", 50, "maximum clients; more are refused with 503")
	flag.BoolVar(&o.TakeOver, "takeover", false, "take over the socket of a running instance, which then hands its clients over and exits")
	return o
}

// Socket is the socket's path.
func (o *Options) Socket() string { return filepath.Join(o.Root, o.Name) }

// Run listens, drops privileges, serves h until SIGTERM or SIGINT, and
// exits.
func (o *Options) Run(h producer.Handler) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("producer", o.Name)
	srv := &producer.Server{Handler: h, Log: log, MaxClients: o.MaxClients}
	listen := producer.Listen
	if o.TakeOver {
		listen = producer.ListenTakeOver
	}
	o.serve(log, func(path string, mode ...os.FileMode) (net.Listener, error) {
		ln, err := listen(path, mode...)
		if err == nil {
			go drainWhenReplaced(log, ln, srv)
		}
		return ln, err
	}, srv.Serve, srv.Shutdown)
}

// drainWhenReplaced hands the clients over once a new instance has taken
// the socket, then exits. (Drain closes the listener, which ends Serve:
// serve waits for this instead of returning.)
func drainWhenReplaced(log *slog.Logger, ln net.Listener, srv *producer.Server) {
	for range time.Tick(100 * time.Millisecond) {
		if producer.Replaced(ln) {
			handingOver.Store(true)
			log.Info("a new instance has the socket: handing clients over")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := srv.Drain(ctx)
			cancel()
			if err != nil {
				log.Warn("drain did not finish", "err", err)
			}
			log.Info("drained")
			os.Exit(0)
		}
	}
}

// handingOver is set while drainWhenReplaced runs.
var handingOver atomic.Bool

// RunDirect is Run for a route in mode: direct: the gateway hands over
// each client's socket, and h serves it with wsgate's engine here.
func (o *Options) RunDirect(h gateway.Handler) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("producer", o.Name)
	srv := &direct.Server{Handler: h, Log: log}
	o.serve(log, direct.Listen, srv.Serve, srv.Shutdown)
}

func (o *Options) serve(log *slog.Logger, listen func(string, ...os.FileMode) (net.Listener, error),
	serve func(net.Listener) error, shutdown func(context.Context) error) {
	ln, err := listen(o.Socket())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if o.TakeOver {
		log.Info("took over the socket", "socket", o.Socket())
	}
	if err := o.dropPrivileges(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown(ctx)
		ln.Close()
	}()
	log.Info("listening", "socket", o.Socket())
	if err := serve(ln); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
	if handingOver.Load() {
		select {} // drainWhenReplaced exits
	}
	if !producer.Replaced(ln) {
		os.Remove(o.Socket())
	}
}

func (o *Options) dropPrivileges() error {
	if o.User == "" {
		return nil
	}
	u, err := user.Lookup(o.User)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	return nil
}

// PeerAddress is a client's address without the port, as ouistiti's
// WSWhois reports it.
func PeerAddress(c *producer.Client) string {
	if h, _, err := net.SplitHostPort(c.Remote); err == nil {
		return h
	}
	return c.Remote
}
