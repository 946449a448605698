package websocket

import (
	"time"

	"github.com/wsgate/wsgate/internal/monoclock"
)

// The inflation budget. permessage-deflate lets a client make the server
// work far more than it sends: a 1 KiB frame can inflate to 1 MiB, so
// four clients sending such frames kept a core busy and multiplied every
// other client's latency. Options.InflateRate bounds the bytes one
// connection may have inflated per second, with a burst of the larger of
// a second's worth and two messages of MaxMessageSize. Past it the
// connection is slowed: its reader waits until the budget has refilled
// before it reads on (a TCP window the client sees shrink). A connection
// slowed for more than inflateSlowLimit since its budget was last full is
// closed with 1008: it is not an honest client having a burst.
//
// A transport whose I/O belongs to an owner thread (a Waker: an httpd
// worker) is never made to wait; its connection is closed as soon as it
// is over the budget by more than the burst.

// inflateSlowLimit is how long a connection may be kept slowed, in all,
// before it is closed.
var inflateSlowLimit = 10 * time.Second

// maxInflatePause bounds one wait, so that the connection's other work
// (its keepalive, a close) is not held up for long.
const maxInflatePause = time.Second

// CauseInflateBudget closes a connection that keeps inflating more than
// InflateRate (1008).
const CauseInflateBudget = "inflate_budget"

// chargeInflate counts n inflated bytes against the connection's budget,
// and slows the reader or fails the connection past it.
func (c *Conn) chargeInflate(n int) *protoError {
	rate := c.opts.InflateRate
	z := c.z
	if rate <= 0 || z == nil {
		return nil
	}
	burst := float64(max(rate, 2*c.opts.MaxMessageSize))
	now := monoclock.Now()
	if z.inflAt == 0 {
		z.inflTokens = burst
	} else {
		z.inflTokens = min(burst, z.inflTokens+(now-z.inflAt).Seconds()*float64(rate))
	}
	z.inflAt = now
	if z.inflTokens >= burst {
		z.inflSlowed = 0
	}
	z.inflTokens -= float64(n)
	if z.inflTokens >= 0 {
		return nil
	}
	debt := -z.inflTokens
	if c.wk != nil {
		if debt > burst {
			return &protoError{Code: StatusPolicyViolation, Reason: "inflating more than the server allows", inflate: true}
		}
		return nil
	}
	if z.inflSlowed >= inflateSlowLimit {
		return &protoError{Code: StatusPolicyViolation, Reason: "inflating more than the server allows", inflate: true}
	}
	pause := min(time.Duration(debt/float64(rate)*float64(time.Second)), maxInflatePause)
	z.inflSlowed += pause
	time.Sleep(pause)
	return nil
}
