// Command echo is ouistiti's websocket_echo as a wsgate producer: every
// message goes back to its sender, text as text and binary as binary.
//
//	echo -R /run/wsgate -n echo [-u nobody] [-m 50]
package main

import (
	"flag"

	"github.com/wsgate/wsgate/examples/producers/sample"
	"github.com/wsgate/wsgate/sdk/producer"
)

type echo struct{}

func (echo) OnOpen(*producer.Client, *producer.Accept) error { return nil }
func (echo) OnMessage(c *producer.Client, typ producer.MessageType, data []byte) {
	c.Send(typ, data)
}
func (echo) OnClose(*producer.Client, uint16, string) {}

func main() {
	opts := sample.Flags()
	flag.Parse()
	opts.Run(echo{})
}
