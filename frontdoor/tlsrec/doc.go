// Package tlsrec takes a TLS 1.3 connection's record layer over from
// crypto/tls once the WebSocket upgrade is done, so that an idle wss
// connection waits like an idle ws connection, with its two cipher states
// and secrets on top, instead of keeping a whole crypto/tls Conn with the
// buffers its handshake grew (about 7 KiB, which no API releases).
// Measured at 5,000 idle connections: 4.3 KiB each, against 12.3 with
// crypto/tls and 1.4 for plain ws.
//
// crypto/tls still does the whole handshake, certificate selection, session
// tickets and the HTTP request. What it hands over is only the record
// protection of RFC 8446 §5: AEAD-protected records, the per-record nonce,
// the inner content type, alerts (§6) and KeyUpdate (§4.6.3). The key
// schedule's last step, from traffic secret to key and IV (§7.3), is
// repeated here with crypto/hkdf; the AEADs are the standard library's AES-GCM
// and x/crypto's ChaCha20-Poly1305, the same ones crypto/tls uses.
//
// How the state is learnt, without touching crypto/tls's internals:
//
//   - Secrets: the listener gives each connection's handshake a Config
//     whose KeyLogWriter is that connection's tap, which keeps the
//     application traffic secrets (and nothing is written anywhere).
//   - Sequence numbers: the tap sits between crypto/tls and the socket and
//     keeps a copy of every whole record that passes after the secrets are
//     known, until the takeover (or until the first request is done, or 32
//     KiB). At the takeover each copy is opened with the application key at
//     the next sequence number: the ones that open are application records
//     (§5.3 numbers them from 0 for each key), the ones that do not are the
//     handshake flight under the handshake keys. A record cannot open under
//     the wrong key or number except with the AEAD's forgery probability.
//   - Plaintext crypto/tls has decrypted or holds undecrypted: Take reads
//     the tls.Conn with the tap answering "timeout" instead of reading the
//     socket, which makes crypto/tls give up every whole record it holds
//     and keep only a partial one, whose bytes the tap has too.
//
// Anything Take does not recognise (TLS 1.2, a KeyUpdate or alert already
// received, a record that opens out of order, a tap that stopped
// recording) leaves the connection with crypto/tls, which goes on as if
// nothing happened; Take reports why, and the daemon counts it.
package tlsrec
