//go:build cgo

package testserver

import _ "github.com/wsgate/wsgate/apps/cplugin"
