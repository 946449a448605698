package main

import (
	"io"

	"github.com/klauspost/compress/flate"
)

func newFlateWriter(w io.Writer) *flate.Writer {
	fw, _ := flate.NewWriter(w, 9)
	return fw
}
