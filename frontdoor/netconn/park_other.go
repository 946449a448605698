//go:build !linux

package netconn

import "sync/atomic"

const canPark = false

func (d *conn) park() bool { return false }
func (d *conn) unpark()    {}

type parkState = atomic.Uint32

// Parked returns the number of connections parked now: none here.
func Parked() int { return 0 }
