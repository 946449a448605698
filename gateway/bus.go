package gateway

import (
	"sync"
	"sync/atomic"

	"github.com/wsgate/wsgate/internal/recovered"
)

// A Bus carries a route's broadcasts and room messages between the
// processes that serve the route: httpd's children, or daemons on several
// machines. Without one (the default), rooms and broadcasts stay inside
// one process and cost nothing more.
//
// The interface is topics and bytes, nothing more, so that a broker can be
// added without touching its callers: the gateway encodes its messages,
// numbers them per publisher and topic (so a receiver drops duplicates and
// counts what it missed), and decodes what it receives. NATS is one
// implementation (package natsbus); LocalBus, in process, is another.
type Bus interface {
	// Publish sends msg to every other subscriber of topic, without
	// waiting for the network. It must not deliver msg back to this
	// process's own subscriptions. An error means msg was not sent.
	Publish(topic string, msg []byte) error
	// Subscribe calls fn for every message another process publishes on
	// topic, one at a time and in each publisher's order, until the
	// returned function is called. fn must not keep msg after it returns.
	Subscribe(topic string, fn func(msg []byte)) (unsubscribe func(), err error)
}

// OrderedBus is implemented by buses that can also carry a topic's
// messages back to the publishing process, in the broker's one order with
// everyone else's. Channels (Gateway.Publish) use it: their publishes come
// from separate requests that may reach different processes (an httpd
// child each), and a message published after another was acknowledged
// must not overtake it anywhere, which delivering locally first would
// allow.
type OrderedBus interface {
	// PublishOrdered sends msg to every subscriber of topic, this
	// process's included, and returns once the broker has it.
	PublishOrdered(topic string, msg []byte) error
	// SubscribeOrdered is Subscribe for such a topic: fn gets this
	// process's messages too, in the broker's order.
	SubscribeOrdered(topic string, fn func(msg []byte)) (unsubscribe func(), err error)
}

// Broadcaster is implemented by applications that send to rooms or to
// their whole route (a chat, a producer's BROADCAST and ROOM), so that a
// front door serving a route from several processes without a bus can
// warn that the route is split.
type Broadcaster interface {
	Broadcasts() bool
}

// BusStatus is implemented by buses that can say more about their state,
// for metrics and readiness.
type BusStatus interface {
	// Connected says whether messages currently reach the other
	// processes.
	Connected() bool
	// SlowConsumer counts the messages the bus dropped because this
	// process did not take them fast enough.
	SlowConsumer() uint64
}

// LocalBus connects gateways in one process, as a broker connects
// processes: each gateway given a member of the same LocalBus (UseBus)
// sees the others' broadcasts. Like a broker it delivers asynchronously:
// each subscription has a queue and a goroutine, and a subscriber that
// falls LocalQueue messages behind loses what does not fit (counted as
// SlowConsumer). It is for programs that run several gateways, and for
// tests of what a bus does, without a broker.
type LocalBus struct {
	mu     sync.RWMutex
	subs   map[string]map[*localSub]struct{}
	nextID uint64
}

// LocalQueue is the length of a LocalBus subscription's queue.
const LocalQueue = 65536

type localSub struct {
	owner *localMember
	q     chan []byte
	done  chan struct{}
}

// NewLocalBus returns an empty in-process bus.
func NewLocalBus() *LocalBus { return &LocalBus{subs: map[string]map[*localSub]struct{}{}} }

// Member returns a handle for one participant: what it publishes is not
// delivered to its own subscriptions, as a broker's "no echo" does.
func (b *LocalBus) Member() Bus {
	b.mu.Lock()
	b.nextID++
	b.mu.Unlock()
	return &localMember{b: b}
}

type localMember struct {
	b    *LocalBus
	slow atomic.Uint64
}

func (m *localMember) Publish(topic string, msg []byte) error {
	cp := append([]byte(nil), msg...)
	m.b.mu.RLock()
	defer m.b.mu.RUnlock()
	for s := range m.b.subs[topic] {
		if s.owner == m {
			continue
		}
		select {
		case s.q <- cp:
		default:
			s.owner.slow.Add(1)
		}
	}
	return nil
}

func (m *localMember) Subscribe(topic string, fn func([]byte)) (func(), error) {
	s := &localSub{owner: m, q: make(chan []byte, LocalQueue), done: make(chan struct{})}
	m.b.mu.Lock()
	if m.b.subs[topic] == nil {
		m.b.subs[topic] = map[*localSub]struct{}{}
	}
	m.b.subs[topic][s] = struct{}{}
	m.b.mu.Unlock()
	recovered.Go("local bus subscription", func() {
		for {
			select {
			case msg := <-s.q:
				fn(msg)
			case <-s.done:
				return
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			m.b.mu.Lock()
			delete(m.b.subs[topic], s)
			if len(m.b.subs[topic]) == 0 {
				delete(m.b.subs, topic)
			}
			m.b.mu.Unlock()
			close(s.done)
		})
	}, nil
}

func (m *localMember) Connected() bool      { return true }
func (m *localMember) SlowConsumer() uint64 { return m.slow.Load() }
