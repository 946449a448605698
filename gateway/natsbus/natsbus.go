// Package natsbus is the gateway's Bus over NATS (nats.go): every process
// that serves a route, on any machine, shares the route's broadcasts and
// rooms through a NATS server or cluster.
//
// NATS core is at most once, as the gateway's bus is: what is published
// while a node is cut off from NATS does not reach it. A publisher cut off
// keeps what it publishes in nats.go's reconnect buffer (Options.Buffer)
// and sends it when it is back; what does not fit is refused and counted
// by the gateway. A node that cannot take messages as fast as they come
// is a NATS slow consumer: nats.go drops for it, the drops are counted,
// and the other nodes are not held up.
package natsbus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Options configure the connection. URLs is required; the rest follow
// nats.go's options of the same names.
type Options struct {
	URLs []string
	// Name identifies this node in the NATS server's monitoring.
	Name string
	// Credentials is a NATS credentials file (JWT and NKey seed); NKey a
	// file holding an NKey seed; User and Password, or Token, the simple
	// forms. URLs may also carry user:password@.
	Credentials, NKey, User, Password, Token string
	// CA verifies the servers' certificates; Cert and Key are this
	// node's, for servers that ask for one.
	CA, Cert, Key string
	// Buffer bounds what is kept for NATS while it is unreachable
	// (default 8 MiB).
	Buffer int
	// Pending bounds, in messages and bytes, what one subscription may
	// hold before this node counts as a slow consumer (default 65536
	// messages, 64 MiB).
	PendingMsgs, PendingBytes int
	Log                       *slog.Logger
}

// Bus is a NATS connection serving as the gateway's Bus.
type Bus struct {
	nc   *nats.Conn
	echo *nats.Conn // channels' connection: echo on (OrderedBus)
	log  *slog.Logger
	opts Options

	// subs are the live subscriptions; slow the drops of those gone.
	// Read at scrapes, changed when routes start and stop.
	mu   sync.Mutex
	subs map[*nats.Subscription]struct{}
	slow uint64
}

// Connect returns a Bus. It does not wait for a server: a node whose NATS
// is down at startup serves its own clients and joins when NATS comes.
func Connect(o Options) (*Bus, error) {
	if len(o.URLs) == 0 {
		return nil, errors.New("natsbus: no NATS server URL")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Buffer == 0 {
		o.Buffer = 8 << 20
	}
	if o.PendingMsgs == 0 {
		o.PendingMsgs = 65536
	}
	if o.PendingBytes == 0 {
		o.PendingBytes = 64 << 20
	}
	b := &Bus{log: o.Log, opts: o, subs: map[*nats.Subscription]struct{}{}}
	no := []nats.Option{
		nats.Name(o.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ReconnectBufSize(o.Buffer),
	}
	// What the node says about the bus comes from its main connection.
	events := []nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				return // Close: the node is stopping
			}
			b.log.Warn("cluster: disconnected from NATS; broadcasts stay on this node until it is back", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("cluster: connected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			b.log.Info("cluster: connected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				// nats.go counts each subscription's drops; the total is
				// read in SlowConsumer.
				b.log.Warn("cluster: this node is a slow consumer: NATS messages dropped", "subject", subject(sub))
				return
			}
			b.log.Warn("cluster: NATS error", "err", err)
		}),
	}
	switch {
	case o.Credentials != "":
		no = append(no, nats.UserCredentials(o.Credentials))
	case o.NKey != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKey)
		if err != nil {
			return nil, fmt.Errorf("natsbus: nkey: %w", err)
		}
		no = append(no, opt)
	case o.Token != "":
		no = append(no, nats.Token(o.Token))
	case o.User != "":
		no = append(no, nats.UserInfo(o.User, o.Password))
	}
	if o.CA != "" || o.Cert != "" {
		cfg, err := tlsConfig(o)
		if err != nil {
			return nil, err
		}
		no = append(no, nats.Secure(cfg))
	}
	// The gateway publishes to the others; its own subscriptions must
	// not get its messages back.
	nc, err := nats.Connect(joinURLs(o.URLs), append(append(no, events...), nats.NoEcho())...)
	if err != nil {
		return nil, fmt.Errorf("natsbus: %w", err)
	}
	// Channels (OrderedBus) come back to this node in the server's order:
	// a second connection, with echo, carries them.
	echo, err := nats.Connect(joinURLs(o.URLs), no...)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbus: %w", err)
	}
	b.nc, b.echo = nc, echo
	return b, nil
}

func subject(s *nats.Subscription) string {
	if s == nil {
		return ""
	}
	return s.Subject
}

func joinURLs(urls []string) string {
	out := ""
	for i, u := range urls {
		if i > 0 {
			out += ","
		}
		out += u
	}
	return out
}

func tlsConfig(o Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CA != "" {
		pem, err := os.ReadFile(o.CA)
		if err != nil {
			return nil, fmt.Errorf("natsbus: ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("natsbus: ca: no certificate in %s", o.CA)
		}
		cfg.RootCAs = pool
	}
	if o.Cert != "" {
		cert, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return nil, fmt.Errorf("natsbus: cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Publish implements gateway.Bus. While NATS is unreachable the message
// waits in the reconnect buffer; when that is full it is refused.
func (b *Bus) Publish(topic string, msg []byte) error { return b.nc.Publish(topic, msg) }

// Subscribe implements gateway.Bus. nats.go calls fn from one goroutine
// per subscription, in the order the server delivers, which is each
// publisher's order.
func (b *Bus) Subscribe(topic string, fn func([]byte)) (func(), error) {
	return b.subscribe(b.nc, topic, fn)
}

func (b *Bus) subscribe(nc *nats.Conn, topic string, fn func([]byte)) (func(), error) {
	sub, err := nc.Subscribe(topic, func(m *nats.Msg) { fn(m.Data) })
	if err != nil {
		return nil, err
	}
	if err := sub.SetPendingLimits(b.opts.PendingMsgs, b.opts.PendingBytes); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	b.mu.Lock()
	b.subs[sub] = struct{}{}
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[sub]; !ok {
			return
		}
		// What it dropped stays in the total.
		if n, err := sub.Dropped(); err == nil {
			b.slow += uint64(n)
		}
		delete(b.subs, sub)
		sub.Unsubscribe()
	}, nil
}

// PublishOrdered implements gateway.OrderedBus: it returns once the
// server has processed msg (a flush), so that whatever is published
// after it, by any node, is delivered after it.
func (b *Bus) PublishOrdered(topic string, msg []byte) error {
	if err := b.echo.Publish(topic, msg); err != nil {
		return err
	}
	return b.echo.FlushTimeout(2 * time.Second)
}

// SubscribeOrdered implements gateway.OrderedBus, on the connection with
// echo.
func (b *Bus) SubscribeOrdered(topic string, fn func([]byte)) (func(), error) {
	return b.subscribe(b.echo, topic, fn)
}

// Connected implements gateway.BusStatus.
func (b *Bus) Connected() bool { return b.nc.IsConnected() }

// SlowConsumer implements gateway.BusStatus: the messages NATS dropped
// because a subscription of this node fell behind.
func (b *Bus) SlowConsumer() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.slow
	for s := range b.subs {
		if d, err := s.Dropped(); err == nil {
			n += uint64(d)
		}
	}
	return n
}

// Close flushes what is buffered (for at most a second) and disconnects.
func (b *Bus) Close() {
	b.nc.FlushTimeout(time.Second)
	b.nc.Close()
	b.echo.Close()
}
