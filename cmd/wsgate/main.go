// Command wsgate is the WebSocket gateway daemon.
//
//	wsgate                     serve the embedded default configuration
//	wsgate -config FILE        serve FILE
//	wsgate check FILE          validate FILE and exit
//	wsgate apps                list the built-in applications
//	wsgate default-config      print the embedded default configuration
//	wsgate --version           print the version
//
// Signals: SIGTERM and SIGINT shut down gracefully (1001 to every client);
// SIGHUP reloads the configuration; SIGUSR2 upgrades the binary without
// closing the listening sockets.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	_ "github.com/wsgate/wsgate/apps/all"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/frontdoor/daemon"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/recovered"
	"github.com/wsgate/wsgate/internal/version"
)

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
			fmt.Fprintln(stdout, "wsgate", version.Get())
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
		fmt.Fprintln(stdout, "wsgate", version.Get())
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wsgate: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	load := config.Default
	if *cfgPath != "" {
		load = func() (*config.Config, error) { return config.Load(*cfgPath) }
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintln(stderr, "wsgate:", err)
		return 1
	}
	return serve(cfg, load, stderr)
}

func check(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: wsgate check FILE")
		return 2
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Every stage, even after one found errors: keys and values, then the
	// files (TLS, logs, static directories, sockets' directories), then
	// the applications of the routes that parsed (provisioned and
	// validated, which is where they check their own files and programs;
	// nothing is dialled or listened on). A key's typo then hides nothing.
	cfg, perr := config.ParsePartial(args[0], data)
	errs := config.Errors(perr)
	if cfg != nil {
		errs = append(errs, config.Errors(cfg.CheckFiles())...)
		apps := *cfg
		apps.Routes = nil
		for _, r := range cfg.Routes {
			if r.Handler != nil && strings.HasPrefix(r.Path, "/") {
				apps.Routes = append(apps.Routes, r)
			}
		}
		if len(apps.Routes) > 0 {
			gw, err := apps.NewGateway(discardLogger())
			if err != nil {
				errs = append(errs, config.Errors(err)...)
			} else {
				gw.Stop(context.Background())
			}
		}
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errLine(errs[i]) < errLine(errs[j]) })
		seen := map[string]bool{}
		for _, e := range errs {
			if msg := e.Error(); !seen[msg] {
				seen[msg] = true
				fmt.Fprintln(stderr, msg)
			}
		}
		return 1
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(stderr, w)
	}
	fmt.Fprintf(stdout, "%s: OK (%d listeners, %d routes)\n", args[0], len(cfg.Listeners), len(cfg.Routes))
	return 0
}

// errLine is a configuration error's line, for sorting (0 for none).
func errLine(err error) int {
	var e *config.Error
	if errors.As(err, &e) {
		return e.Line
	}
	return 0
}

func serve(cfg *config.Config, load func() (*config.Config, error), stderr io.Writer) int {
	log, out, err := daemon.NewLogger(cfg.Log)
	if err != nil {
		fmt.Fprintln(stderr, "wsgate:", err)
		return 1
	}
	defer out.Close()
	srv, err := daemon.New(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "wsgate:", err)
		return 1
	}
	srv.SetLogOutput(out)
	srv.SetConfigSource(load)
	if err := srv.Listen(); err != nil {
		srv.Close()
		fmt.Fprintln(stderr, "wsgate:", err)
		return 1
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR2)
	log.Info("wsgate started", "version", version.Get().String(), "config", cfg.File)
	if err := srv.Serve(); err != nil {
		srv.Close()
		fmt.Fprintln(stderr, "wsgate:", err)
		return 1
	}
	srv.SignalReady()
	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			log.Info("SIGHUP: reloading the configuration")
			srv.ReloadFromSource(context.Background()) // logs and counts its own failure
			continue
		case syscall.SIGUSR2:
			exe, err := os.Executable()
			if err == nil {
				err = srv.Upgrade(exe, os.Args[1:])
			}
			if err != nil {
				log.Error("binary upgrade failed; this process goes on serving", "err", err)
				continue
			}
			if err := srv.Drain(); err != nil {
				log.Warn("drain after the upgrade did not finish cleanly", "err", err)
			}
			log.Info("wsgate stopped after handing over to the new process")
			return 0
		}
		shutdownTimeout := srv.Config().Server.ShutdownTimeout
		log.Info("signal received; closing connections with 1001", "signal", sig.String(), "timeout", shutdownTimeout.String())
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		recovered.Go("second signal", func() {
			for sig := range sigs {
				if sig == syscall.SIGTERM || sig == syscall.SIGINT {
					log.Warn("second signal: exiting at once")
					os.Exit(1)
				}
			}
		})
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("shutdown did not finish cleanly", "err", err)
		}
		break
	}
	log.Info("wsgate stopped")
	return 0
}
