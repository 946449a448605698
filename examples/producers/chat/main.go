// Command chat is ouistiti's websocket_chat (with -w) as a wsgate
// producer. Every text message goes to all the other clients as
// "<name>: <text>", and three commands are understood:
//
//	WSHello <name>          answers WSWelcome <name>, with a numeric suffix
//	                        if the name is taken (bob, bob2, bob3, ...)
//	WSPrivate <name> <msg>  sends "WSPrivate <sender> <msg>" to name only;
//	                        "WSError no such name <name>" if nobody has it
//	WSWhois <name>          answers "WSIs <name> <address>", or
//	                        "WSIs <name> undefined"
//
// Clients are called guest<id> until they say hello. The page in www/
// speaks this protocol; serve it with the gateway's static option.
//
// A name is also kept by the gateway, as the client's room "name:<name>":
// when the gateway re-announces a client after this producer restarted
// (route option hold) or handed over (-takeover), the new process reads
// the name back from the client's rooms, so nobody has to say hello again.
//
//	chat -R /run/wsgate -n chat [-u nobody] [-m 50]
package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate/examples/producers/sample"
	"github.com/wsgate/wsgate/sdk/producer"
)

type chat struct {
	mu    sync.Mutex
	names map[string]*producer.Client
}

func name(c *producer.Client) string { return c.State().(string) }

const nameRoom = "name:"

func (ch *chat) OnOpen(c *producer.Client, _ *producer.Accept) error {
	c.SetState(fmt.Sprintf("guest%d", c.ID))
	for _, r := range c.Rooms {
		if n, ok := strings.CutPrefix(r, nameRoom); ok && c.Resumed {
			ch.mu.Lock()
			ch.names[n] = c
			ch.mu.Unlock()
			c.SetState(n)
		}
	}
	return nil
}

func (ch *chat) OnMessage(c *producer.Client, typ producer.MessageType, data []byte) {
	if typ != producer.Text {
		return
	}
	text := string(data)
	cmd, rest, _ := strings.Cut(text, " ")
	switch cmd {
	case "WSHello":
		ch.hello(c, strings.TrimSpace(rest))
	case "WSPrivate":
		to, msg, _ := strings.Cut(rest, " ")
		ch.mu.Lock()
		target := ch.names[to]
		ch.mu.Unlock()
		text := "WSPrivate " + name(c) + " " + msg
		if target != nil {
			// Through the name's room, on the sender's connection: it
			// reaches the client wherever it is now (moved to a new
			// instance of this producer, say), while a send on its own
			// connection would not.
			c.SendRoom(nameRoom+to, producer.Text, []byte(text), false)
			return
		}
		// Not known here (yet): a client re-announced after a restart, or
		// carried by another connection of an instance handing over, is
		// still in its name's room at the gateway. Asking waits for the
		// gateway's answer, which this goroutine (the connection's
		// reader) delivers: ask from another.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			n, _, err := c.Count(ctx, nameRoom+to)
			cancel()
			if err != nil || n == 0 {
				c.SendText("WSError no such name " + to)
				return
			}
			c.SendRoom(nameRoom+to, producer.Text, []byte(text), false)
		}()
	case "WSWhois":
		who := strings.TrimSpace(rest)
		ch.mu.Lock()
		target := ch.names[who]
		ch.mu.Unlock()
		if target == nil {
			c.SendText("WSIs " + who + " undefined")
			return
		}
		c.SendText("WSIs " + who + " " + sample.PeerAddress(target))
	default:
		c.Broadcast(producer.Text, []byte(name(c)+": "+text), true)
	}
}

// hello gives c the name it asks for, or that name with the smallest
// numeric suffix free.
func (ch *chat) hello(c *producer.Client, want string) {
	if want == "" || strings.ContainsAny(want, " \t") {
		c.SendText("WSError bad name")
		return
	}
	ch.mu.Lock()
	if old, ok := c.State().(string); ok && ch.names[old] == c {
		delete(ch.names, old)
		c.Leave(nameRoom + old)
	}
	got := want
	for i := 2; ch.names[got] != nil; i++ {
		got = fmt.Sprintf("%s%d", want, i)
	}
	ch.names[got] = c
	c.SetState(got)
	ch.mu.Unlock()
	c.Join(nameRoom + got)
	c.SendText("WSWelcome " + got)
}

func (ch *chat) OnClose(c *producer.Client, code uint16, reason string) {
	if code == 1012 && reason == "moved" {
		// Handed over to the new instance: still connected, still named.
		return
	}
	ch.mu.Lock()
	if n := name(c); ch.names[n] == c {
		delete(ch.names, n)
	}
	ch.mu.Unlock()
}

func main() {
	opts := sample.Flags()
	flag.Parse()
	opts.Run(&chat{names: map[string]*producer.Client{}})
}
