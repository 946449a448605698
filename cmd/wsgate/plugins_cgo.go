//go:build cgo

package main

// With a C compiler, wsgate loads apache-websocket C plugins (routes with
// plugin: {library, init}).
import _ "github.com/wsgate/wsgate/apps/cplugin"
