package websocket

import "github.com/wsgate/wsgate/internal/bufpool"

// getBuf and putBuf are the shared pool (internal/bufpool): front doors
// read into its buffers and back doors release what they were handed.
func getBuf(n int) *[]byte { return bufpool.Get(n) }

func putBuf(b *[]byte) { bufpool.Put(b) }
