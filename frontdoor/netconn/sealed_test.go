//go:build linux

package netconn

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/frontdoor/tlsrec"
)

// TestSealedShortWrites: a socket that takes only part of a batch cuts a
// record; its rest goes out first on the next write, the plaintext it
// carried is counted once, and the peer opens the whole stream. The
// socket is a UNIX socket pair whose room is made byte-exact by filling
// it and reading back what the test wants it to take.
func TestSealedShortWrites(t *testing.T) {
	secret := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	cut := 0 // batches whose write ended inside a record
	for _, room := range []int{0, 3, 200, 2000, 9000, 16384 + 10, 20000, 30000} {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
		unix.SetNonblock(fds[0], true)
		local, _ := net.FileConn(os.NewFile(uintptr(fds[0]), "local"))
		remote := os.NewFile(uintptr(fds[1]), "remote")
		unix.Close(fds[0])
		// Fill the socket, read it all back, fill it again and read back
		// all but room bytes: about room bytes of space, and room bytes
		// of filler ahead of the records.
		filler := fill(t, local)
		drainN(t, remote, filler)
		refill := fill(t, local)
		drainN(t, remote, refill-min(room, refill))
		pending := min(room, refill) // filler bytes still in the socket

		out, err := tlsrec.NewLayer(tls.TLS_AES_128_GCM_SHA256, secret(1), secret(2), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		in, _ := tlsrec.NewLayer(tls.TLS_AES_128_GCM_SHA256, secret(2), secret(1), 0, 0)
		sc, _ := local.(*net.UnixConn).SyscallConn()
		d := &conn{nc: local, rc: sc, rawFD: -1, sl: &sealed{rec: out}}
		d.io = getScratch()

		msg := bytes.Repeat([]byte("0123456789abcdef"), 3000) // 48000 bytes, three records
		bufs := [][]byte{msg[:100], msg[100:]}
		n, err := fdConn{d}.TryWriteBuffers(bufs)
		if err != nil {
			t.Fatal(err)
		}
		if n >= len(msg) {
			t.Fatalf("room %d: the whole batch went out", room)
		}
		if d.sl.pend != nil {
			cut++
		}
		// The engine gives the rest again, now with a blocking write while
		// the peer reads.
		got := make(chan []byte)
		go func() {
			all, _ := io.ReadAll(remote)
			got <- all
		}()
		if err := d.WriteBuffers([][]byte{msg[n:]}); err != nil {
			t.Fatal(err)
		}
		local.Close()
		wire := <-got
		var plain bytes.Buffer
		if err := in.Open(wire[pending:], &plain); err != nil {
			t.Fatalf("room %d: %v", room, err)
		}
		if !bytes.Equal(plain.Bytes(), msg) {
			t.Fatalf("room %d: %d bytes came through, want %d", room, plain.Len(), len(msg))
		}
		remote.Close()
	}
	if cut == 0 {
		t.Fatal("no write ended inside a record: the test did not test")
	}
}

func fill(t *testing.T, c net.Conn) int {
	sc, _ := c.(*net.UnixConn).SyscallConn()
	total := 0
	sc.Write(func(fd uintptr) bool {
		b := make([]byte, 512)
		for {
			n, err := unix.Write(int(fd), b)
			if err != nil {
				return true
			}
			total += n
		}
	})
	return total
}

func drainN(t *testing.T, r io.Reader, n int) {
	if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
		t.Fatal(err)
	}
}
