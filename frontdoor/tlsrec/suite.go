package tlsrec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// suite is a TLS 1.3 cipher suite (RFC 8446 §B.4): an AEAD and the hash of
// its key schedule.
type suite struct {
	id     uint16
	keyLen int
	hash   func() hash.Hash
	aead   func(key []byte) (cipher.AEAD, error)
}

func aesGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

var suites = [...]suite{
	{tls.TLS_AES_128_GCM_SHA256, 16, sha256.New, aesGCM},
	{tls.TLS_AES_256_GCM_SHA384, 32, sha512.New384, aesGCM},
	{tls.TLS_CHACHA20_POLY1305_SHA256, chacha20poly1305.KeySize, sha256.New, chacha20poly1305.New},
}

func suiteByID(id uint16) *suite {
	for i := range suites {
		if suites[i].id == id {
			return &suites[i]
		}
	}
	return nil
}

// ivLen is every TLS 1.3 AEAD's nonce length (RFC 8446 §5.3).
const ivLen = 12

// expandLabel is HKDF-Expand-Label with an empty context (RFC 8446 §7.1).
func expandLabel(h func() hash.Hash, secret []byte, label string, n int) ([]byte, error) {
	info := make([]byte, 0, 4+6+len(label))
	info = binary.BigEndian.AppendUint16(info, uint16(n))
	info = append(info, byte(6+len(label)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	info = append(info, 0)
	return hkdf.Expand(h, secret, string(info), n)
}

// direction is one direction's record protection: the traffic secret
// (kept for KeyUpdate), the AEAD made from it, and the sequence number.
type direction struct {
	suite  *suite
	secret []byte
	aead   cipher.AEAD
	iv     [ivLen]byte
	nonce  [ivLen]byte // scratch, here so that no nonce escapes per record
	seq    uint64
}

var errSecret = errors.New("tlsrec: traffic secret does not fit the cipher suite")

// set installs a traffic secret: key and IV from it (RFC 8446 §7.3),
// sequence number 0 (§5.3).
func (d *direction) set(s *suite, secret []byte) error {
	if len(secret) != s.hash().Size() {
		return errSecret
	}
	key, err := expandLabel(s.hash, secret, "key", s.keyLen)
	if err != nil {
		return err
	}
	iv, err := expandLabel(s.hash, secret, "iv", ivLen)
	if err != nil {
		return err
	}
	aead, err := s.aead(key)
	clear(key)
	if err != nil {
		return err
	}
	d.suite, d.secret, d.aead, d.seq = s, secret, aead, 0
	copy(d.iv[:], iv)
	clear(iv)
	return nil
}

// update moves to the next traffic secret (RFC 8446 §7.2), and clears
// the one it replaces: after a KeyUpdate nothing of the old key is kept.
func (d *direction) update() error {
	next, err := expandLabel(d.suite.hash, d.secret, "traffic upd", len(d.secret))
	if err != nil {
		return err
	}
	old := d.secret
	if err := d.set(d.suite, next); err != nil {
		return err
	}
	clear(old)
	return nil
}

// nonceNow returns the nonce of the record at the current sequence number:
// the IV with the sequence number XORed into its last eight bytes (RFC
// 8446 §5.3).
func (d *direction) nonceNow() []byte {
	d.nonce = d.iv
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], d.seq)
	for i := range s {
		d.nonce[ivLen-8+i] ^= s[i]
	}
	return d.nonce[:]
}

// next returns the nonce for the next record and counts it.
func (d *direction) next() []byte {
	n := d.nonceNow()
	d.seq++
	return n
}

// open opens a whole protected record (header included) in place at the
// next sequence number, which it counts only if the record authenticates
// (§5.2). The plaintext still ends in the content type and its padding
// (see innerType).
func (d *direction) open(rec []byte) ([]byte, bool) {
	ct := rec[headerLen:]
	if len(ct) < tagLen {
		return nil, false
	}
	pt, err := d.aead.Open(ct[:0], d.nonceNow(), ct, rec[:headerLen])
	if err != nil {
		return nil, false
	}
	d.seq++
	return pt, true
}

// innerType splits an opened record's plaintext into its content and
// content type, dropping the zero padding (§5.4); ok is false when there
// is no content type, only padding.
func innerType(pt []byte) (typ byte, data []byte, ok bool) {
	i := len(pt) - 1
	for i >= 0 && pt[i] == 0 {
		i--
	}
	if i < 0 {
		return 0, nil, false
	}
	return pt[i], pt[:i], true
}
