package program

import (
	"strings"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/gateway"
)

func init() {
	config.RegisterKind(config.Kind{
		Key: "program",
		Doc: "a program per client, messages on stdin and stdout (websocketd's model): program: {command: [PATH, ARGS...]}",
		Decode: func(d *config.Decoder) gateway.Handler {
			mark := d.ErrorCount()
			var c Config
			d.Fields(map[string]func(*config.Decoder){
				"command": func(v *config.Decoder) {
					if v.IsScalar() {
						s, _ := v.Scalar()
						c.Command = strings.Fields(s)
						return
					}
					c.Command = v.Strings()
				},
				"dir": func(v *config.Decoder) { v.String(&c.Dir) },
				"env": func(v *config.Decoder) { c.Env = v.StringMap() },
				"mode": func(v *config.Decoder) {
					var s string
					v.OneOf(&s, "line", "binary")
					c.Binary = s == "binary"
				},
				"max_processes": func(v *config.Decoder) { v.Int(1, 1<<20, &c.MaxProcesses) },
				"kill_grace":    func(v *config.Decoder) { v.Duration(&c.KillGrace) },
			})
			if len(c.Command) == 0 && d.IsMapping() {
				d.ErrorfIn("command", "needs the program to run")
			}
			return d.Build(mark, func() (gateway.Handler, error) { return New(c) })
		},
	})
}
