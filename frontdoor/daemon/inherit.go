package daemon

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Listening sockets a wsgate can be given instead of opening them:
//
//   - by systemd's socket activation (sd_listen_fds(3)): LISTEN_PID is
//     this process, LISTEN_FDS sockets start at descriptor 3;
//   - by the wsgate it replaces in a binary upgrade (see handover.go):
//     WSGATE_LISTEN_FDS sockets start at descriptor 4, with their
//     addresses in WSGATE_LISTEN_ADDRS ("tcp|127.0.0.1:8080;unix|/run/x").
//
// Each configured listener takes the inherited socket with its address;
// the others are opened as usual. An inherited socket no listener asks for
// is served too when it came from systemd (the socket unit says where to
// listen), and closed when it came from a previous wsgate.

const (
	listenFdsStart    = 3 // systemd's SD_LISTEN_FDS_START
	upgradeReadyFd    = 3 // the pipe the new process says it is ready on
	upgradeListenFrom = 4
)

// inheritedSockets are the sockets this process was given.
type inheritedSockets struct {
	socks   []inheritedSocket
	systemd bool
}

type inheritedSocket struct {
	network, address string
	ln               net.Listener
	taken            bool
	// adopted: given by an embedding program (Server.Adopt), for a public
	// listener or the admin listener alike.
	adopted bool
}

// inheritSockets collects the sockets in the environment, and clears the
// variables so that programs this process starts do not take them.
func inheritSockets() (*inheritedSockets, error) {
	is := &inheritedSockets{}
	if n := os.Getenv("WSGATE_LISTEN_FDS"); n != "" {
		count, err := strconv.Atoi(n)
		addrs := strings.Split(os.Getenv("WSGATE_LISTEN_ADDRS"), ";")
		os.Unsetenv("WSGATE_LISTEN_FDS")
		os.Unsetenv("WSGATE_LISTEN_ADDRS")
		if err != nil || count < 0 || count != len(addrs) {
			return nil, fmt.Errorf("WSGATE_LISTEN_FDS=%q does not match WSGATE_LISTEN_ADDRS", n)
		}
		for i := range count {
			network, address, _ := strings.Cut(addrs[i], "|")
			ln, err := fileListener(upgradeListenFrom+i, "inherited-"+address)
			if err != nil {
				return nil, err
			}
			is.socks = append(is.socks, inheritedSocket{network: network, address: address, ln: ln})
		}
		return is, nil
	}
	if os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) {
		count, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
		if err != nil || count < 0 {
			return nil, fmt.Errorf("LISTEN_FDS=%q is not a number", os.Getenv("LISTEN_FDS"))
		}
		is.systemd = true
		for i := range count {
			ln, err := fileListener(listenFdsStart+i, "systemd")
			if err != nil {
				return nil, err
			}
			network, address := "tcp", ln.Addr().String()
			if ua, ok := ln.Addr().(*net.UnixAddr); ok {
				network, address = "unix", ua.Name
			}
			is.socks = append(is.socks, inheritedSocket{network: network, address: address, ln: ln})
		}
	}
	return is, nil
}

func fileListener(fd int, name string) (net.Listener, error) {
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("inherited descriptor %d is not a listening socket: %w", fd, err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	return ln, nil
}

// take returns the inherited socket listening on network and address, if
// there is one.
func (is *inheritedSockets) take(network, address string) net.Listener {
	if is == nil {
		return nil
	}
	for i := range is.socks {
		s := &is.socks[i]
		sameNetwork := s.network == network || s.adopted && "admin-"+s.network == network
		if !s.taken && sameNetwork && sameAddress(network, s.address, address) {
			s.taken = true
			return s.ln
		}
	}
	return nil
}

// rest returns the sockets no listener took.
func (is *inheritedSockets) rest() []inheritedSocket {
	if is == nil {
		return nil
	}
	var out []inheritedSocket
	for _, s := range is.socks {
		if !s.taken {
			out = append(out, s)
		}
	}
	return out
}

// sameAddress compares a socket's address with a configured one: UNIX
// paths exactly, TCP by port and by host unless the configured host is
// empty, a name, or the unspecified address.
func sameAddress(network, actual, configured string) bool {
	network = strings.TrimPrefix(network, "admin-")
	if network == "unix" {
		return actual == configured
	}
	ah, ap, err1 := net.SplitHostPort(actual)
	ch, cp, err2 := net.SplitHostPort(configured)
	if err1 != nil || err2 != nil || ap != cp {
		return false
	}
	cip := net.ParseIP(ch)
	if ch == "" || cip == nil || cip.IsUnspecified() {
		return true
	}
	aip := net.ParseIP(ah)
	return aip != nil && aip.Equal(cip)
}

// sdNotify sends a state to systemd (sd_notify(3)) when it supervises
// this process with Type=notify; it does nothing otherwise.
func sdNotify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
