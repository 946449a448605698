// Package all links in every kind of application wsgate ships: importing
// it registers the built-in Go applications (app: echo, dumb-increment,
// chat) and the kinds backend, docroot, notice, program and plugin with the
// configuration. The daemon and mod_wsgate import it; a program that
// embeds the gateway imports only what it uses.
//
// A new kind of application is a package that calls config.RegisterKind
// in its init function, and one line here.
package all

import (
	_ "github.com/wsgate/wsgate/apps/backend"
	_ "github.com/wsgate/wsgate/apps/builtin"
	_ "github.com/wsgate/wsgate/apps/cplugin"
	_ "github.com/wsgate/wsgate/apps/docroot"
	_ "github.com/wsgate/wsgate/apps/notice"
	_ "github.com/wsgate/wsgate/apps/program"
)
