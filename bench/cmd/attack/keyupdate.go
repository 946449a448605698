package main

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// keyUpdateFlood is a client that finishes its handshake and WebSocket
// upgrade with crypto/tls and then writes KeyUpdate records of its own,
// back to back, each moving its key on, until the server cuts it; then it
// connects again. It returns how many KeyUpdates the server took (those
// written before the cut) and over how many connections.
func keyUpdateFlood(addr string, stop <-chan struct{}) string {
	var updates, conns, refused atomic.Int64
	var wg sync.WaitGroup
	var emu sync.Mutex
	ends := map[string]int{}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n, end, err := floodOnce(addr, stop)
				updates.Add(n)
				if err != nil {
					refused.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				conns.Add(1)
				emu.Lock()
				ends[end]++
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	return fmt.Sprintf("2 clients writing KeyUpdates back to back over wss, reconnecting when cut: %d KeyUpdates written on %d connections (%d failed to connect; ended by %v)",
		updates.Load(), conns.Load(), refused.Load(), ends)
}

// floodOnce is one connection of the flood: it returns the KeyUpdates
// written before the server cut it (or stop).
func floodOnce(addr string, stop <-chan struct{}) (int64, string, error) {
	raw, err := from("127.0.0.2", addr)
	if err != nil {
		return 0, "", err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	var kl strings.Builder
	var klMu sync.Mutex
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"},
		KeyLogWriter: writerFunc(func(p []byte) (int, error) { klMu.Lock(); defer klMu.Unlock(); return kl.Write(p) })})
	// The upgrade goes in one record (sequence number 0 of the client's
	// application key); the flood starts at 1.
	req := "GET /echo HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := tc.Write([]byte(req)); err != nil {
		return 0, "", err
	}
	br := bufio.NewReader(tc)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, " 101 ") {
		return 0, "", fmt.Errorf("upgrade: %q %v", line, err)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return 0, "", err
		}
		if l == "\r\n" {
			break
		}
	}
	klMu.Lock()
	secret := keyLogSecret(kl.String(), "CLIENT_TRAFFIC_SECRET_0")
	klMu.Unlock()
	s, err := newSealer(tc.ConnectionState().CipherSuite, secret, 1)
	if err != nil {
		return 0, "", err
	}
	// What the server sends (an alert, a close) is read and not opened;
	// how its side ended is told by when the stream ends.
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		buf := make([]byte, 4096)
		for {
			if _, err := raw.Read(buf); err != nil {
				return
			}
		}
	}()
	var n int64
	batch := make([]byte, 0, 64*27)
	for {
		select {
		case <-stop:
			return n, "stop", nil
		case <-closed:
			return n, "server closed", nil
		default:
		}
		batch = batch[:0]
		for range 64 {
			batch = s.seal(batch, 22, []byte{24, 0, 0, 1, 0}) // KeyUpdate, update_not_requested
			s.update()
		}
		raw.SetWriteDeadline(time.Now().Add(2 * time.Second))
		w, err := raw.Write(batch)
		n += int64(w / 27)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return n, "write timeout", nil
			}
			return n, "write error", nil
		}
	}
}

func keyLogSecret(log, label string) []byte {
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == label {
			b, _ := hex.DecodeString(f[2])
			return b
		}
	}
	return nil
}

// sealer protects records as a TLS 1.3 client does (RFC 8446 §5.2, §7.3),
// for the AES-GCM suites.
type sealer struct {
	h      func() hash.Hash
	keyLen int
	secret []byte
	aead   cipher.AEAD
	iv     []byte
	seq    uint64
}

func newSealer(suite uint16, secret []byte, seq uint64) (*sealer, error) {
	s := &sealer{secret: secret, seq: seq}
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		s.h, s.keyLen = sha256.New, 16
	case tls.TLS_AES_256_GCM_SHA384:
		s.h, s.keyLen = sha512.New384, 32
	default:
		return nil, fmt.Errorf("cipher suite %#x: the flood seals AES-GCM only", suite)
	}
	if err := s.install(secret); err != nil {
		return nil, err
	}
	s.seq = seq // install starts a key at 0; this one has carried seq records
	return s, nil
}

func (s *sealer) label(secret []byte, label string, n int) []byte {
	info := binary.BigEndian.AppendUint16(nil, uint16(n))
	info = append(info, byte(6+len(label)))
	info = append(info, "tls13 "+label...)
	info = append(info, 0)
	out, _ := hkdf.Expand(s.h, secret, string(info), n)
	return out
}

func (s *sealer) install(secret []byte) error {
	b, err := aes.NewCipher(s.label(secret, "key", s.keyLen))
	if err != nil {
		return err
	}
	s.aead, err = cipher.NewGCM(b)
	s.secret, s.iv, s.seq = secret, s.label(secret, "iv", 12), 0
	return err
}

func (s *sealer) update() { s.install(s.label(s.secret, "traffic upd", len(s.secret))) }

func (s *sealer) seal(dst []byte, typ byte, p []byte) []byte {
	h := len(dst)
	dst = append(dst, 23, 3, 3, 0, 0)
	dst = append(dst, p...)
	dst = append(dst, typ)
	binary.BigEndian.PutUint16(dst[h+3:], uint16(len(p)+1+16))
	nonce := bytes.Clone(s.iv)
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], s.seq)
	for i := range seq {
		nonce[4+i] ^= seq[i]
	}
	s.seq++
	return s.aead.Seal(dst[:h+5], nonce, dst[h+5:], dst[h:h+5])
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

var _ net.Conn = (*tls.Conn)(nil)
