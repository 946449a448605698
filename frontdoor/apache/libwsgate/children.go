package main

import (
	"bytes"
	"encoding/json"
	"html"
	"sort"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/metrics"
	"github.com/wsgate/wsgate/internal/recovered"
)

// Counters across httpd's children. Each child serves its own
// connections, so a scrape that one child answers must add up all of
// them. The parent makes a shared memory segment before forking (see
// wsgate_go.c); each child claims a slot in it and publishes its counters
// there every second; whichever child a scrape reaches reads every slot.
//
// A slot holds two JSON documents: the counters of the child using it now,
// and those of the children that used it before (folded in when a new
// child claims the slot), so that no counter goes down when httpd replaces
// a child. A sequence number (odd while the slot is written) lets readers
// retry instead of reading half a write.

const (
	shmMagic   = 0x7773676174655f31 // "wsgate_1"
	shmHeader  = 64
	slotHeader = 32
)

type shmHead struct {
	magic    uint64
	slots    uint32
	slotSize uint32
}

type slotHead struct {
	seq        uint64
	pid        int64
	retiredLen uint32
	currentLen uint32
}

// shm is the segment, nil without one (the parent could not make it).
var shm []byte

// mySlot is this child's slot, -1 when it has none.
var mySlot = -1

// published is what a slot holds, twice.
type published struct {
	Routes []gateway.RouteSnapshot `json:"routes"`
	Links  []gateway.RouteLinks    `json:"links"`
	// Cluster is the child's bus counters (WsgateCluster); in a slot's
	// history, the counters of the children that used it before.
	Cluster *gateway.ClusterStats `json:"cluster,omitempty"`
}

func head() *shmHead { return (*shmHead)(unsafe.Pointer(&shm[0])) }

func slot(i int) (*slotHead, []byte) {
	h := head()
	off := shmHeader + i*int(h.slotSize)
	return (*slotHead)(unsafe.Pointer(&shm[off])), shm[off+slotHeader : off+int(h.slotSize)]
}

// alive reports whether pid is a running process.
func alive(pid int64) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(int(pid), 0)
	return err == nil || err == syscall.EPERM
}

// claimSlot takes a free slot, or one whose child has exited, for this
// child, folding the previous occupant's counters into the slot's history.
func claimSlot() {
	if shm == nil || head().magic != shmMagic {
		return
	}
	me := int64(syscall.Getpid())
	for i := 0; i < int(head().slots); i++ {
		sh, _ := slot(i)
		old := atomic.LoadInt64(&sh.pid)
		if alive(old) && old != me {
			continue
		}
		if !atomic.CompareAndSwapInt64(&sh.pid, old, me) {
			continue
		}
		retired, current := readSlot(i)
		fold(&retired, current)
		writeSlot(i, retired, published{})
		mySlot = i
		return
	}
	log.Warn("no free slot for this child's counters: wsgate-metrics will not count its connections (raise ServerLimit's slots by restarting httpd)")
}

// fold adds b's counters to a.
func fold(a *published, b published) {
	byRoute := map[string]int{}
	for i, r := range a.Routes {
		byRoute[r.Route] = i
	}
	for _, r := range b.Routes {
		if i, ok := byRoute[r.Route]; ok {
			a.Routes[i].Add(&r)
		} else {
			byRoute[r.Route] = len(a.Routes)
			a.Routes = append(a.Routes, r)
		}
	}
	// Links are the state of a live child: not carried over; nor is a
	// cluster's connected state and peers.
	if b.Cluster != nil {
		if a.Cluster == nil {
			a.Cluster = &gateway.ClusterStats{}
		}
		c := a.Cluster
		c.Published += b.Cluster.Published
		c.PublishFailed += b.Cluster.PublishFailed
		c.Received += b.Cluster.Received
		c.Lost += b.Cluster.Lost
		c.Duplicates += b.Cluster.Duplicates
		c.SlowConsumer += b.Cluster.SlowConsumer
	}
}

// current is what this child publishes.
func current() published {
	p := published{Routes: gw.Snapshot(), Links: gw.Links()}
	if cl, ok := gw.ClusterStats(); ok {
		p.Cluster = &cl
	}
	return p
}

// readSlot returns a consistent copy of slot i.
func readSlot(i int) (retired, current published) {
	sh, data := slot(i)
	for try := 0; try < 1000; try++ {
		s1 := atomic.LoadUint64(&sh.seq)
		if s1&1 != 0 {
			time.Sleep(time.Microsecond)
			continue
		}
		rl, cl := atomic.LoadUint32(&sh.retiredLen), atomic.LoadUint32(&sh.currentLen)
		if int(rl)+int(cl) > len(data) {
			continue
		}
		buf := append([]byte(nil), data[:rl+cl]...)
		if atomic.LoadUint64(&sh.seq) != s1 {
			continue
		}
		json.Unmarshal(buf[:rl], &retired)
		json.Unmarshal(buf[rl:], &current)
		return retired, current
	}
	return
}

// writeSlot replaces slot i's contents; only its owner writes it.
func writeSlot(i int, retired, current published) bool {
	r, _ := json.Marshal(retired)
	c, _ := json.Marshal(current)
	sh, data := slot(i)
	if len(r)+len(c) > len(data) {
		return false
	}
	atomic.AddUint64(&sh.seq, 1)
	copy(data, r)
	copy(data[len(r):], c)
	atomic.StoreUint32(&sh.retiredLen, uint32(len(r)))
	atomic.StoreUint32(&sh.currentLen, uint32(len(c)))
	atomic.AddUint64(&sh.seq, 1)
	return true
}

// publish writes this child's counters every second.
func publish() {
	if mySlot < 0 {
		return
	}
	warned := false
	recovered.Go("mod_wsgate counters", func() {
		for {
			retired, _ := readSlot(mySlot)
			if !writeSlot(mySlot, retired, current()) && !warned {
				warned = true
				log.Warn("this child's counters do not fit its shared memory slot; wsgate-metrics misses some of them")
			}
			time.Sleep(time.Second)
		}
	})
}

// publishNow writes this child's counters at once (a scrape answered by
// this child sees its own latest).
func publishNow() {
	if mySlot < 0 {
		return
	}
	retired, _ := readSlot(mySlot)
	writeSlot(mySlot, retired, current())
}

// sumChildren adds up every slot: each child's current counters and the
// history of the slots. It also counts the children publishing.
func sumChildren() (published, int) {
	var total published
	children := 0
	if shm == nil || head().magic != shmMagic {
		return current(), 1
	}
	publishNow()
	links := map[string]*gateway.RouteLinks{}
	for i := 0; i < int(head().slots); i++ {
		sh, _ := slot(i)
		retired, cur := readSlot(i)
		fold(&total, retired)
		if alive(atomic.LoadInt64(&sh.pid)) {
			children++
			fold(&total, cur)
			if c := cur.Cluster; c != nil {
				t := total.Cluster // fold made it
				t.Nodes++
				if c.Connected {
					t.ConnectedCount++
					t.Connected = true
				}
				t.Peers = max(t.Peers, c.Peers)
			}
			for _, l := range cur.Links {
				if t := links[l.Route]; t != nil {
					t.Add(&l.LinkStats)
				} else {
					c := l
					links[l.Route] = &c
				}
			}
		} else {
			fold(&total, cur) // a child gone since its last publish
		}
	}
	for _, l := range links {
		total.Links = append(total.Links, *l)
	}
	sort.Slice(total.Routes, func(i, j int) bool { return total.Routes[i].Route < total.Routes[j].Route })
	sort.Slice(total.Links, func(i, j int) bool { return total.Links[i].Route < total.Links[j].Route })
	return total, children
}

// childrenSource is metrics.Source over every child's counters.
type childrenSource struct {
	p published
}

func (c childrenSource) Snapshot() []gateway.RouteSnapshot { return c.p.Routes }
func (c childrenSource) Links() []gateway.RouteLinks       { return c.p.Links }
func (c childrenSource) Front() metrics.Front              { return metrics.Front{Cluster: c.p.Cluster} }

var childrenDesc = prometheus.NewDesc("wsgate_httpd_children", "httpd children whose counters this scrape adds up.", nil, nil)

// prometheusText renders the sum over the children in Prometheus's text
// format. The Go runtime and process metrics of one child would say
// nothing about httpd as a whole, so they are left out.
func prometheusText() []byte {
	total, children := sumChildren()
	reg := metrics.NewRegistryWithout(childrenSource{total})
	reg.MustRegister(prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
		ch <- prometheus.MustNewConstMetric(childrenDesc, prometheus.GaugeValue, float64(children))
	}))
	mfs, err := reg.Gather()
	var b bytes.Buffer
	if err != nil {
		log.Warn("gathering metrics", "err", err)
	}
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		enc.Encode(mf)
	}
	return b.Bytes()
}

// statusHTML is mod_status's section (ExtendedStatus): the routes, summed
// over the children. short is the machine-readable form (?auto).
func statusText(short bool) []byte {
	total, children := sumChildren()
	var b bytes.Buffer
	var open, accepted, refused, in, out uint64
	for _, r := range total.Routes {
		open += r.Open
		accepted += r.Accepted
		in += r.MessagesIn
		out += r.MessagesOut
		for _, rc := range r.Refused {
			refused += rc.Count
		}
	}
	if short {
		for _, kv := range []struct {
			k string
			v uint64
		}{{"WsgateChildren", uint64(children)}, {"WsgateOpen", open}, {"WsgateAccepted", accepted}, {"WsgateRefused", refused},
			{"WsgateMessagesIn", in}, {"WsgateMessagesOut", out}} {
			b.WriteString(kv.k + ": " + itoa(kv.v) + "\n")
		}
		return b.Bytes()
	}
	b.WriteString("<hr>\n<h2>mod_wsgate</h2>\n<p>" + itoa(open) + " WebSockets open in " + itoa(uint64(children)) +
		" children; " + itoa(accepted) + " accepted, " + itoa(refused) + " refused.</p>\n")
	b.WriteString("<table border=\"0\"><tr><th>route</th><th>app</th><th>open</th><th>accepted</th><th>refused</th><th>messages in</th><th>messages out</th><th>dropped</th></tr>\n")
	for _, r := range total.Routes {
		var ref uint64
		for _, rc := range r.Refused {
			ref += rc.Count
		}
		b.WriteString("<tr><td>" + html.EscapeString(r.Route) + "</td><td>" + html.EscapeString(r.App) + "</td><td>" + itoa(r.Open) +
			"</td><td>" + itoa(r.Accepted) + "</td><td>" + itoa(ref) + "</td><td>" + itoa(r.MessagesIn) + "</td><td>" +
			itoa(r.MessagesOut) + "</td><td>" + itoa(r.Dropped) + "</td></tr>\n")
	}
	b.WriteString("</table>\n")
	return b.Bytes()
}

func itoa(n uint64) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(buf[i:])
}
