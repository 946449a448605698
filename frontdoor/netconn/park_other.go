//go:build !linux

package netconn

import "sync/atomic"

const canPark = false

func (d *conn) park() bool { return false }
func (d *conn) unpark()    {}

type parkState = atomic.Uint32
