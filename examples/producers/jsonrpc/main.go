// Command jsonrpc is a JSON-RPC 2.0 server as a wsgate producer, like
// ouistiti's websocket_jsonrpc. Each text message is a request or a batch;
// methods are registered by name, and errors use the standard codes:
// -32700 parse error, -32600 invalid request, -32601 method not found,
// -32602 invalid params, -32603 internal error.
//
// Registered here: echo, add (two numbers, by position or as {a, b}),
// subtract, and clients (how many are connected).
//
//	jsonrpc -R /run/wsgate -n jsonrpc [-u nobody] [-m 50]
package main

import (
	"flag"

	"github.com/wsgate/wsgate/examples/producers/jsonrpc/rpc"
	"github.com/wsgate/wsgate/examples/producers/sample"
	"github.com/wsgate/wsgate/sdk/producer"
)

func main() {
	opts := sample.Flags()
	flag.Parse()
	s := rpc.NewServer()
	s.Register("echo", func(c *producer.Client, params any) (any, error) { return params, nil })
	s.Register("add", rpc.Numbers(func(a, b float64) float64 { return a + b }))
	s.Register("subtract", rpc.Numbers(func(a, b float64) float64 { return a - b }))
	s.Register("clients", func(c *producer.Client, _ any) (any, error) { return s.Clients(), nil })
	opts.Run(s)
}
