package config

import (
	"encoding/json"
	"errors"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wsgate/wsgate/gateway"
)

// ParseRoute parses one route given as a mapping (YAML or JSON), as
// mod_wsgate turns a configuration section's directives into one. A route
// without an application is accepted here: like apache-websocket,
// mod_wsgate answers such a location's upgrades with 500, after the 400
// checks.
func ParseRoute(name string, data []byte) (*Route, error) {
	p := &parser{file: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, p.syntaxError(data, err)
	}
	if len(doc.Content) == 0 {
		return nil, &Error{File: name, Msg: "empty route"}
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{doc.Content[0]}}
	routes := parseRoutes(p.decoder(seq, ""), &policyBlock{}, true)
	// Keys are the route's own ("backend.mode"), not a list's ("[0].backend.mode").
	for _, e := range p.errs {
		if ce, ok := e.(*Error); ok {
			ce.Key = strings.TrimPrefix(strings.TrimPrefix(ce.Key, "[0]"), ".")
		}
	}
	if err := errors.Join(p.errs...); err != nil {
		return nil, err
	}
	if len(routes) != 1 {
		return nil, &Error{File: name, Msg: "not a route"}
	}
	return &routes[0], nil
}

// parseRoutes reads the list of routes. Every key of a route is a policy
// key, its path, or the key of a registered kind of application, whose
// Decode reads the value.
func parseRoutes(d *Decoder, defaults *policyBlock, allowNoApp bool) []Route {
	if d.n.Kind != yaml.SequenceNode {
		d.Errorf("must be a list of routes")
		return nil
	}
	var out []Route
	paths := map[string]string{}
	for _, item := range d.Items() {
		r := Route{Line: item.Line()}
		var pathDecoder *Decoder
		var chosen []string
		var kindText string
		extra := map[string]func(*Decoder){
			"path": func(v *Decoder) { pathDecoder = v; v.String(&r.Path) },
		}
		for _, k := range Kinds() {
			extra[k.Key] = func(v *Decoder) {
				chosen = append(chosen, k.Key)
				h := k.Decode(v)
				if len(chosen) == 1 {
					r.Kind, r.Handler = k.Key, h
					kindText = v.Text()
					r.App = k.Key
					if k.Key == "app" {
						r.App, _ = v.Scalar()
					}
				}
			}
		}
		pb := policy(item, defaults, extra)
		if !item.IsMapping() {
			continue
		}
		r.Policy = pb.p
		r.Key = routeKey(r.Kind, kindText, &r.Policy)
		switch {
		case r.Path == "":
			item.ErrorfIn("path", "every route needs a path")
		case !strings.HasPrefix(r.Path, "/"):
			pathDecoder.Errorf("must start with /, not %q", r.Path)
		default:
			if prev, dup := paths[r.Path]; dup {
				pathDecoder.Errorf("%s is already the path of %s", r.Path, prev)
			}
			paths[r.Path] = item.Key()
		}
		switch {
		case len(chosen) == 0 && !allowNoApp:
			others := ""
			for _, k := range Kinds() {
				if k.Key != "app" {
					others += ", " + k.Key
				}
			}
			item.ErrorfIn("app", "route has no application: set app (one of %s)%s", strings.Join(gateway.AppNames(), ", "), others)
		case len(chosen) > 1:
			item.Errorf("set only one of %s", kindKeys("and"))
		}
		if err := r.Policy.Validate(); err != nil {
			for _, e := range Errors(err) {
				item.Errorf("%v", e)
			}
		}
		out = append(out, r)
	}
	return out
}

// routeKey identifies a route's configuration for reloads: its kind, its
// application's block as written, and its policy with the defaults it
// inherited. Two parses of an unchanged route give the same key.
func routeKey(kind, text string, p *gateway.Policy) string {
	pol, err := json.Marshal(p)
	if err != nil {
		return ""
	}
	return kind + "\x00" + text + "\x00" + string(pol)
}
