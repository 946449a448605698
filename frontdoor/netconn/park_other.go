//go:build !linux

package netconn

import "sync/atomic"

const canPark = false

func (d *Transport) park() bool { return false }
func (d *Transport) unpark()    {}

type parkState = atomic.Uint32
