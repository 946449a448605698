// Command peers runs one of the servers wsgate is measured against, each
// written the way its library's documentation recommends for speed:
//
//	peers -server gorilla|coder|gws|nbio -addr 127.0.0.1:9000
//	peers -server relay -addr 127.0.0.1:9001 -upstream 127.0.0.1:9000
//
// Every WebSocket server has the same three routes as the wsgate
// configuration the harness uses: /echo echoes each message, /echo-deflate
// does the same with permessage-deflate enabled, and /broadcast relays each
// text message to every connection of the route, sender included (wsgate's
// chat application). The physical baseline, a plain TCP echo, is a C
// program: bench/tcpecho. The proxy group's floor, relay, copies bytes to
// an upstream and is no WebSocket server at all (relay_linux.go).
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

var servers = map[string]func(addr string) error{
	"gorilla": gorillaServer,
	"coder":   coderServer,
	"gws":     gwsServer,
	"nbio":    nbioServer,
	"relay":   relayServer,
}

var upstream = flag.String("upstream", "", "relay: the server to relay to (host:port)")

func main() {
	name := flag.String("server", "gorilla", "gorilla, coder, gws, nbio, or relay (with -upstream)")
	addr := flag.String("addr", "127.0.0.1:9000", "listen address (loopback)")
	flag.Parse()
	run, ok := servers[*name]
	if !ok {
		fmt.Fprintf(os.Stderr, "peers: unknown server %q\n", *name)
		os.Exit(2)
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		os.Exit(0)
	}()
	if err := run(*addr); err != nil {
		log.Fatalf("peers %s: %v", *name, err)
	}
}

// origins: the harness's client sends no Origin, and browsers are not
// involved, so every server accepts any.
func anyOrigin(*http.Request) bool { return true }
