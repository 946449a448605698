// Package sample gives the example producers ouistiti's sample-server
// options: -R <docroot>, -n <name>, -u <user>, -m <max clients>. The
// socket is <docroot>/<name>, mode 0777 so the gateway's user can connect;
// with -u the process drops to that user once the socket exists.
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
}

// Flags registers the options on the default flag set; call flag.Parse
// after.
func Flags() *Options {
	o := &Options{}
	flag.StringVar(&o.Root, "R", "/var/run/websocket", "`directory` of the socket (the gateway's docroot)")
	flag.StringVar(&o.Name, "n", filepath.Base(os.Args[0]), "socket `name` in the directory")
	flag.StringVar(&o.User, "u", "", "`user` to run as once the socket is open")
	flag.IntVar(&o.MaxClients, "m", 50, "maximum clients; more are refused with 503")
	return o
}

// Socket is the socket's path.
func (o *Options) Socket() string { return filepath.Join(o.Root, o.Name) }

// Run listens, drops privileges, serves h until SIGTERM or SIGINT, and
// exits.
func (o *Options) Run(h producer.Handler) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("producer", o.Name)
	srv := &producer.Server{Handler: h, Log: log, MaxClients: o.MaxClients}
	o.serve(log, producer.Listen, srv.Serve, srv.Shutdown)
}

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
	os.Remove(o.Socket())
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
