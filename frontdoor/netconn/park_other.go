//go:build !linux

package netconn

import "sync/atomic"

const canPark = false

func (d *conn) park() bool           { return false }
func (d *conn) unpark()              {}
func (d *conn) attach() error        { return nil }
func (d *conn) closeDetached() error { return nil }

type parkState = atomic.Uint32

// Parked returns the number of connections parked now: none here.
func Parked() int { return 0 }
