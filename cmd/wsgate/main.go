// Command wsgate is the WebSocket gateway daemon.
//
//	wsgate                     serve the embedded default configuration
//	wsgate -config FILE        serve FILE
//	wsgate check FILE          validate FILE and exit
//	wsgate apps                list the built-in applications
//	wsgate default-config      print the embedded default configuration
//	wsgate --version           print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/wsgate/wsgate/apps/all"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/frontdoor/daemon"
	"github.com/wsgate/wsgate/gateway"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return check(args[1:], stdout, stderr)
		case "apps":
			fmt.Fprintln(stdout, "Built-in applications (app: NAME):")
			for _, name := range gateway.AppNames() {
				info, _ := gateway.LookupApp(name)
				fmt.Fprintf(stdout, "  %-16s %s\n", name, info.Doc)
			}
			fmt.Fprintln(stdout, "\nKinds of application (the route key that selects them):")
			for _, k := range config.Kinds() {
				fmt.Fprintf(stdout, "  %-16s %s\n", k.Key, k.Doc)
			}
			return 0
		case "default-config":
			stdout.Write(config.DefaultYAML())
			return 0
		case "version":
			fmt.Fprintln(stdout, "wsgate", version)
			return 0
		}
	}
	fs := flag.NewFlagSet("wsgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration `file` (default: the embedded configuration)")
	fs.StringVar(cfgPath, "c", "", "shorthand for -config")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: wsgate [-config FILE]\n       wsgate check FILE\n       wsgate apps | default-config | --version\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "wsgate", version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wsgate: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	var cfg *config.Config
	var err error
	if *cfgPath == "" {
		cfg, err = config.Default()
	} else {
		cfg, err = config.Load(*cfgPath)
	}
	if err != nil {
		fmt.Fprintln(stderr, "wsgate:", err)
		return 1
	}
	return serve(cfg, stderr)
}

func check(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: wsgate check FILE")
		return 2
	}
	cfg, err := config.Load(args[0])
	if err == nil {
		// Provision and validate the applications too, which is where
		// they check their own setup; nothing is dialled or listened on.
		var srv *daemon.Server
		if srv, err = daemon.New(cfg, discardLogger()); err == nil {
			srv.Close()
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK (%d listeners, %d routes)\n", args[0], len(cfg.Listeners), len(cfg.Routes))
	return 0
}

func serve(cfg *config.Config, stderr io.Writer) int {
	log, closer, err := daemon.NewLogger(cfg.Log)
	if err != nil {
		fmt.Fprintln(stderr, "wsgate:", err)
		return 1
	}
	defer closer.Close()
	srv, err := daemon.New(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "wsgate:", err)
		return 1
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		fmt.Fprintln(stderr, "wsgate:", err)
		return 1
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	log.Info("wsgate started", "version", version, "config", cfg.File)
	if err := srv.Serve(); err != nil {
		srv.Close()
		fmt.Fprintln(stderr, "wsgate:", err)
		return 1
	}
	sig := <-sigs
	log.Info("signal received; closing connections with 1001", "signal", sig.String(), "timeout", cfg.Server.ShutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	go func() {
		<-sigs
		log.Warn("second signal: exiting at once")
		os.Exit(1)
	}()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown did not finish cleanly", "err", err)
	}
	log.Info("wsgate stopped")
	return 0
}
