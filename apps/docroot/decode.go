package docroot

import (
	"path"

	"github.com/wsgate/wsgate/apps/backend"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/gateway"
)

func init() {
	config.RegisterKind(config.Kind{
		Key: "docroot",
		Doc: "a directory of producer sockets, one per name below the route (ouistiti's docroot): docroot: {root: DIR}",
		Decode: func(d *config.Decoder) gateway.Handler {
			mark := d.ErrorCount()
			var c Config
			fields, finish := backend.ProducerFields(&c.Producer)
			fields["root"] = func(v *config.Decoder) { v.String(&c.Root) }
			glob := func(dst *[]string) func(*config.Decoder) {
				return func(v *config.Decoder) {
					for _, item := range v.Items() {
						if g, ok := item.Scalar(); ok {
							if _, err := path.Match(g, ""); err != nil {
								item.Errorf("bad glob %q: %v", g, err)
								continue
							}
							*dst = append(*dst, g)
						}
					}
				}
			}
			fields["allow"] = glob(&c.Allow)
			fields["deny"] = glob(&c.Deny)
			d.Fields(fields)
			finish(d)
			if c.Root == "" && d.IsMapping() {
				d.ErrorfIn("root", "needs the directory of sockets")
			}
			return d.Build(mark, func() (gateway.Handler, error) { return NewHandler(c) })
		},
	})
}
