// Command echo is ouistiti's websocket_echo as a wsgate producer: every
// message goes back to its sender, text as text and binary as binary.
//
//	echo -R /run/wsgate -n echo [-u nobody] [-m 50] [-direct]
//
// With -direct it serves a route in mode: direct (ouistiti's direct
// mode): the gateway hands over each client's socket and the echo speaks
// WebSocket itself, with wsgate's engine.
package main

import (
	"context"
	"flag"

	"github.com/wsgate/wsgate/examples/producers/sample"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/sdk/producer"
	"github.com/wsgate/wsgate/websocket"
)

type echo struct{}

func (echo) OnOpen(*producer.Client, *producer.Accept) error { return nil }
func (echo) OnMessage(c *producer.Client, typ producer.MessageType, data []byte) {
	c.Send(typ, data)
}
func (echo) OnClose(*producer.Client, uint16, string) {}

// directEcho is the same echo on the gateway's Handler API, for -direct.
type directEcho struct{}

func (directEcho) OnOpen(context.Context, *gateway.Conn) error  { return nil }
func (directEcho) OnMessage(c *gateway.Conn, m gateway.Message) { c.Send(m.Type, m.Data) }
func (directEcho) OnClose(*gateway.Conn, websocket.CloseStatus) {}

func main() {
	opts := sample.Flags()
	directMode := flag.Bool("direct", false, "serve a route in mode: direct (the gateway hands over each client's socket)")
	flag.Parse()
	if *directMode {
		opts.RunDirect(directEcho{})
		return
	}
	opts.Run(echo{})
}
