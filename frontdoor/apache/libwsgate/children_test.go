package main

import (
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"unsafe"

	"github.com/wsgate/wsgate/gateway"
)

// newSegment is what the parent makes before forking (wsgate_go.c): a
// header and slots, zeroed.
func newSegment(slots, slotSize int) []byte {
	b := make([]byte, shmHeader+slots*slotSize)
	h := (*shmHead)(unsafe.Pointer(&b[0]))
	h.magic, h.slots, h.slotSize = shmMagic, uint32(slots), uint32(slotSize)
	return b
}

// fakeChild is a process standing for another httpd child, with the
// counters it published in slot i.
func fakeChild(t *testing.T, i int, accepted uint64) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sh, _ := slot(i)
	sh.pid = int64(cmd.Process.Pid)
	if !writeSlot(i, published{}, published{Routes: []gateway.RouteSnapshot{{Route: "/chat", Accepted: accepted}}}) {
		t.Fatal("slot too small")
	}
	return cmd
}

func acceptedSum(t *testing.T) (uint64, int) {
	t.Helper()
	total, children := sumChildren()
	var n uint64
	for _, r := range total.Routes {
		if r.Route == "/chat" {
			n += r.Accepted
		}
	}
	return n, children
}

// TestChildrenCounters: a scrape answered by any child adds up every
// child's counters, and no counter goes down when httpd replaces a child:
// a child that has exited still counts until a new one takes its slot,
// which folds them into the slot's history.
func TestChildrenCounters(t *testing.T) {
	log = slog.New(slog.DiscardHandler)
	var err error
	if gw, err = gateway.New(log, &gateway.Route{Path: "/chat", Handler: gateway.Base{}, App: "chat"}); err != nil {
		t.Fatal(err)
	}
	shm = newSegment(3, 4096)
	defer func() { shm, mySlot = nil, -1 }()
	a := fakeChild(t, 0, 5)
	fakeChild(t, 1, 3)
	claimSlot() // this process: the free slot
	if mySlot != 2 {
		t.Fatalf("claimed slot %d, want 2", mySlot)
	}
	if n, children := acceptedSum(t); n != 8 || children != 3 {
		t.Fatalf("sum %d over %d children, want 8 over 3", n, children)
	}
	a.Process.Kill()
	a.Wait()
	if n, children := acceptedSum(t); n != 8 || children != 2 {
		t.Fatalf("after a child exits: sum %d over %d children, want 8 over 2", n, children)
	}
	// A new child takes the dead one's slot: its counters become history.
	mySlot = -1
	sh, _ := slot(2)
	sh.pid = 0 // as if this process had not claimed slot 2
	claimSlot()
	if mySlot != 0 {
		t.Fatalf("the new child claimed slot %d, want the dead child's 0", mySlot)
	}
	if n, _ := acceptedSum(t); n != 8 {
		t.Fatalf("after the slot was reused: sum %d, want 8 (nothing goes down)", n)
	}
	// The exposition and mod_status's line say the same.
	if text := string(prometheusText()); !strings.Contains(text, `wsgate_connections_accepted_total{route="/chat"} 8`) {
		t.Errorf("exposition:\n%s", text)
	}
	if st := string(statusText(true)); !strings.Contains(st, "WsgateAccepted: 8\n") {
		t.Errorf("mod_status:\n%s", st)
	}
}

func TestItoa(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 7: "7", 1000: "1000", 18446744073709551615: "18446744073709551615"} {
		if got := itoa(n); got != want {
			t.Errorf("itoa(%d) = %q", n, got)
		}
	}
}
