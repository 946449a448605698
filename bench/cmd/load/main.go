// Command load is the harness's load generator: one scenario against one
// server, one JSON result on standard output. The bench command runs it
// pinned to its own cores; it is also usable by hand:
//
//	load echo -url ws://127.0.0.1:8080/echo -conns 100 -size 1024 -duration 5s
//	load echo -url wss://127.0.0.1:8443/echo -conns 100 -size 16 (a goroutine per connection)
//	load idle -url ws://127.0.0.1:8080/echo -n 10000 -pid 1234
//	load spike -url ws://127.0.0.1:8080/echo -n 19000 -pid 1234 -watch 30s
//	load storm -url ws://127.0.0.1:8080/echo -conc 64 -duration 3s
//	load survive -url ws://127.0.0.1:8080/echo,wss://127.0.0.1:8443/echo -n 5000 -duration 5m -pid 1234
//	load broadcast -url ws://127.0.0.1:8080/chat -n 10000 -msgs 20
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/bench/load"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: load echo|idle|spike|storm|broadcast [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	url := fs.String("url", "ws://127.0.0.1:8080/echo", "WebSocket URL (broadcast: several, comma-separated, to spread the subscribers over a cluster's nodes)")
	conns := fs.Int("conns", 1, "echo: connections")
	size := fs.Int("size", 64, "echo, broadcast: payload bytes")
	duration := fs.Duration("duration", 5*time.Second, "echo, storm, survive: how long to run")
	messages := fs.Int64("messages", 0, "echo: stop after this many echoes in all (0: run for -duration)")
	text := fs.Bool("text", false, "echo: text messages instead of binary")
	raw := fs.Bool("raw", false, "echo: no handshake (the server is a plain TCP echo)")
	deflate := fs.Bool("deflate", false, "echo: negotiate permessage-deflate and send compressed messages")
	n := fs.Int("n", 10000, "idle, spike, broadcast, survive (per URL): connections")
	pid := fs.Int("pid", 0, "idle, spike: the server's pid")
	pidfile := fs.String("pidfile", "", "idle, spike: the server's pid file, instead of -pid")
	children := fs.Bool("children", false, "idle, spike: measure the server's children too (httpd)")
	settle := fs.Duration("settle", 3*time.Second, "idle, spike: wait after the last connection before measuring")
	watch := fs.Duration("watch", 30*time.Second, "spike: how long to watch RSS after the close")
	status := fs.String("status", "", "idle: httpd's server-status?auto URL, to count the workers the connections keep busy")
	pending := fs.Int("pending", 0, "idle over wss: leave this many bytes of a TLS record sent on each connection while it idles")
	pings := fs.Bool("pings", false, "idle: answer the server's pings while idling, as browsers do")
	conc := fs.Int("conc", 64, "storm: concurrent clients")
	msgs := fs.Int("msgs", 20, "broadcast: messages")
	timeout := fs.Duration("timeout", 30*time.Second, "broadcast: longest wait for one fan-out")
	gap := fs.Duration("gap", 0, "broadcast: pause before each message (long enough, and the subscribers are parked when it comes)")
	label := fs.String("label", "", "printed in the result's text form")
	human := fs.Bool("human", false, "print a line of text instead of JSON")
	fs.Func("header", "a header every handshake sends, \"Name: value\" (repeatable): a token for a route with auth", func(v string) error {
		if !strings.Contains(v, ":") || strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("%q is not Name: value", v)
		}
		load.ExtraHeaders += v + "\r\n"
		return nil
	})
	fs.Parse(os.Args[2:])

	var res load.Result
	var err error
	switch os.Args[1] {
	case "echo":
		res, err = load.Echo(load.EchoOptions{URL: *url, Conns: *conns, Size: *size, Duration: *duration,
			Messages: *messages, Text: *text, Deflate: *deflate, Raw: *raw})
	case "idle", "spike":
		if *pidfile != "" {
			b, rerr := os.ReadFile(*pidfile)
			if rerr != nil {
				fail(rerr)
			}
			*pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if *pid == 0 {
			fail(fmt.Errorf("idle needs -pid or -pidfile"))
		}
		rss := func() int64 { return load.RSS(*pid, *children) }
		if os.Args[1] == "spike" {
			res, err = load.Spike(*url, *n, *settle, *watch, rss)
		} else {
			res, err = load.IdleWith(*url, *n, *settle, rss, load.IdleOptions{Status: *status, Pending: *pending, Pings: *pings, PSS: func() int64 { return load.PSS(*pid, *children) }})
		}
	case "survive":
		if *pidfile != "" {
			b, rerr := os.ReadFile(*pidfile)
			if rerr != nil {
				fail(rerr)
			}
			*pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		rss := func() int64 { return load.RSS(*pid, *children) }
		res, err = load.Survive(strings.Split(*url, ","), *n, *duration, rss)
	case "storm":
		res, err = load.Storm(*url, *conc, *duration)
	case "broadcast":
		res, err = load.Broadcast(strings.Split(*url, ","), *n, *msgs, *size, *timeout, *gap)
	default:
		fail(fmt.Errorf("unknown scenario %q", os.Args[1]))
	}
	if err != nil {
		fail(err)
	}
	if *human {
		fmt.Printf("%s %s conns=%d size=%d rate=%.0f p50=%.0fus p99=%.0fus p999=%.0fus", *label, res.Scenario,
			res.Conns, res.Size, res.Rate, res.P50, res.P99, res.P999)
		if res.Scenario == "idle" {
			fmt.Printf(" rss=%d->%dKiB per_conn=%.2fKiB", res.RSSBefore, res.RSSAfter, res.PerConnKiB)
			if *status != "" {
				fmt.Printf(" busy_workers=%d idle_workers=%d", res.BusyWorkers, res.IdleWorkers)
			}
		}
		if res.Scenario == "survive" {
			fmt.Printf(" lost=%d pongs=%d echoed=%d rss=%d->%dKiB", res.Lost, res.Pongs, res.Count, res.RSSBefore, res.RSSAfter)
		}
		if res.Scenario == "spike" {
			fmt.Printf(" rss=%d peak=%d after=%dKiB back_within_2x=%ds series=%v", res.RSSBefore, res.RSSPeak, res.RSSAfter, res.BackWithin2x, res.RSSSeries)
		}
		fmt.Println()
		return
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "load:", err)
	os.Exit(1)
}
