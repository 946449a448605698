package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/wsgate/wsgate/apps/all"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/websocket"
)

func TestDefault(t *testing.T) {
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Listeners) != 1 || cfg.Listeners[0].Address != "127.0.0.1:8080" || !cfg.Server.Demo {
		t.Fatalf("%+v", cfg)
	}
	var paths []string
	for _, r := range cfg.Routes {
		paths = append(paths, r.Path+"="+r.App)
	}
	if got := strings.Join(paths, " "); got != "/echo=echo /dumb-increment=dumb-increment /chat=chat" {
		t.Fatalf("routes %s", got)
	}
}

func TestFullConfig(t *testing.T) {
	cfg, err := config.Parse("full.yaml", []byte(`
listen:
  - address: "[::1]:9000"
  - address: 127.0.0.1:9443
    tls: {cert: c.pem, key: k.pem}
  - unix: /tmp/x.sock
    mode: "0666"
log: {level: debug, format: json, output: stdout}
server: {handshake_timeout: 3s, shutdown_timeout: 1m, demo: off}
defaults:
  max_message_size: 1MiB
  origin_check: Trusted
  trusted_origins: [https://a.example]
  idle_timeout: 5m
routes:
  - path: /a
    app: echo
  - path: /b/
    app: chat
    max_message_size: 4096
    origin_check: off
    trusted_proxies: [10.0.0.0/8, 127.0.0.1, unix]
    public_origin: https://b.example
    allow_reserved_status_codes: On
    subprotocols: [v1, v2]
    keepalive_interval: 30s
    close_timeout: 1s
    write_timeout: 10s
    max_queue: 256k
    slow_consumer: drop
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Listeners) != 3 || cfg.Listeners[1].TLS == nil || cfg.Listeners[2].Network != "unix" || cfg.Listeners[2].Mode != 0o666 {
		t.Fatalf("listeners %+v", cfg.Listeners)
	}
	if cfg.Log.Format != "json" || cfg.Log.Output != "stdout" || cfg.Log.Level.String() != "DEBUG" {
		t.Fatalf("log %+v", cfg.Log)
	}
	if cfg.Server.HandshakeTimeout != 3*time.Second || cfg.Server.ShutdownTimeout != time.Minute || cfg.Server.Demo {
		t.Fatalf("server %+v", cfg.Server)
	}
	a, b := cfg.Routes[0].Policy, cfg.Routes[1].Policy
	if a.MaxMessageSize != 1<<20 || a.OriginCheck != gateway.OriginTrusted || a.IdleTimeout != 5*time.Minute || len(a.TrustedOrigins) != 1 {
		t.Fatalf("route a inherits defaults: %+v", a)
	}
	if b.MaxMessageSize != 4096 || b.OriginCheck != gateway.OriginOff || len(b.TrustedProxies) != 2 || !b.TrustUnixPeers ||
		b.PublicOrigin != "https://b.example" || !b.AllowReservedStatusCodes || strings.Join(b.Subprotocols, ",") != "v1,v2" ||
		b.KeepaliveInterval != 30*time.Second || b.CloseTimeout != time.Second || b.WriteTimeout != 10*time.Second ||
		b.MaxQueue != 256<<10 || b.SlowConsumer != websocket.SlowConsumerDrop || b.IdleTimeout != 5*time.Minute {
		t.Fatalf("route b: %+v", b)
	}
}

// TestErrors checks that each mistake is reported with the file, the line
// and the full key.
func TestErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"syntax", "log: {}\nroutes:\n  - path: /a\n    app: echo\n  oops\n", "bad.yaml:5: routes: could not find expected ':'"},
		{"empty", "", "bad.yaml: the configuration is empty"},
		{"not a mapping", "- a\n- b\n", "bad.yaml:1: must be a mapping"},
		{"unknown top-level key", "routes:\n  - {path: /a, app: echo}\nlisten_on: x\n", "bad.yaml:3: listen_on: unknown key"},
		{"unknown route key", "routes:\n  - path: /a\n    app: echo\n    max_msg_size: 10\n", "bad.yaml:4: routes[0].max_msg_size: unknown key"},
		{"route without app", "routes:\n  - path: /a\n", "bad.yaml:2: routes[0].app: route has no application"},
		{"unknown app", "routes:\n  - path: /a\n    app: nope\n", `bad.yaml:3: routes[0].app: unknown application "nope"`},
		{"route without path", "routes:\n  - app: echo\n", "bad.yaml:2: routes[0].path: every route needs a path"},
		{"relative path", "routes:\n  - path: a\n    app: echo\n", "bad.yaml:2: routes[0].path: must start with /"},
		{"duplicate path", "routes:\n  - {path: /a, app: echo}\n  - path: /a\n    app: chat\n", "bad.yaml:3: routes[1].path: /a is already the path of routes[0]"},
		{"no routes", "listen:\n  - address: 127.0.0.1:1\n", "bad.yaml:1: routes: no routes are configured"},
		{"bad origin_check", "routes:\n  - path: /a\n    app: echo\n    origin_check: sometimes\n", `bad.yaml:4: routes[0].origin_check: must be same, trusted or off, not "sometimes"`},
		{"trusted without list", "routes:\n  - path: /a\n    app: echo\n    origin_check: trusted\n", "bad.yaml:2: routes[0]: origin_check is trusted but trusted_origins is empty"},
		{"bad size", "routes:\n  - path: /a\n    app: echo\n    max_message_size: 12 parsecs\n", "bad.yaml:4: routes[0].max_message_size: unknown size unit"},
		{"zero size", "routes:\n  - path: /a\n    app: echo\n    max_message_size: 0\n", "bad.yaml:4: routes[0].max_message_size: cannot be turned off: every message is held whole"},
		{"header size off", "server: {max_header_bytes: 0}\nroutes: [{path: /a, app: echo}]\n", "bad.yaml:1: server.max_header_bytes: cannot be turned off"},
		{"header count off", "server: {max_header_count: off}\nroutes: [{path: /a, app: echo}]\n", "bad.yaml:1: server.max_header_count: cannot be turned off"},
		{"duration without unit", "routes:\n  - path: /a\n    app: echo\n    idle_timeout: 30\n", "bad.yaml:4: routes[0].idle_timeout: must be a duration with a unit"},
		{"bad bool", "routes:\n  - path: /a\n    app: echo\n    allow_reserved_status_codes: maybe\n", "bad.yaml:4: routes[0].allow_reserved_status_codes: must be true or false"},
		{"bad slow_consumer", "routes:\n  - path: /a\n    app: echo\n    slow_consumer: block\n", "bad.yaml:4: routes[0].slow_consumer: must be close or drop"},
		{"bad proxy", "routes:\n  - path: /a\n    app: echo\n    trusted_proxies: [10.0.0.0/8, lan]\n", `bad.yaml:4: routes[0].trusted_proxies[1]: must be an IP address`},
		{"bad subprotocol", "routes:\n  - path: /a\n    app: echo\n    subprotocols: [\"a b\"]\n", `bad.yaml:4: routes[0].subprotocols[0]: "a b" is not a valid subprotocol token`},
		{"bad public origin", "routes:\n  - path: /a\n    app: echo\n    public_origin: example.com\n", "bad.yaml:2: routes[0]: public_origin:"},
		{"duplicate key", "routes:\n  - path: /a\n    app: echo\n    app: chat\n", "bad.yaml:4: routes[0].app: duplicate key"},
		{"bad listener address", "listen:\n  - address: localhost\nroutes:\n  - {path: /a, app: echo}\n", "bad.yaml:2: listen[0].address: must be host:port"},
		{"listener both", "listen:\n  - address: 127.0.0.1:1\n    unix: /x\nroutes:\n  - {path: /a, app: echo}\n", "bad.yaml:2: listen[0]: set address or unix, not both"},
		{"tls without key", "listen:\n  - address: 127.0.0.1:1\n    tls: {cert: c}\nroutes:\n  - {path: /a, app: echo}\n", "bad.yaml:3: listen[0].tls: needs both cert and key"},
		{"bad mode", "listen:\n  - unix: /x\n    mode: rw\nroutes:\n  - {path: /a, app: echo}\n", "bad.yaml:3: listen[0].mode: must be an octal permission"},
		{"bad log level", "log: {level: loud}\nroutes:\n  - {path: /a, app: echo}\n", `bad.yaml:1: log.level: must be debug, info, warn or error, not "loud"`},
		{"defaults unknown key", "defaults: {path: /x}\nroutes:\n  - {path: /a, app: echo}\n", "bad.yaml:1: defaults.path: unknown key"},
		{"auth without a kind", "routes:\n  - path: /a\n    app: echo\n    auth: {}\n", "bad.yaml:4: routes[0].auth: set jwt, forward or cert"},
		{"auth both kinds", "routes:\n  - path: /a\n    app: echo\n    auth: {jwt: {algorithms: [HS256]}, forward: {url: http://a/}}\n", "routes[0].auth: set one of jwt, forward and cert"},
		{"jwt without algorithms", "routes:\n  - path: /a\n    app: echo\n    auth: {jwt: {jwks_url: https://idp/keys}}\n", "bad.yaml:4: routes[0].auth.jwt: algorithms: list the accepted ones"},
		{"jwt alg none", "routes:\n  - path: /a\n    app: echo\n    auth: {jwt: {algorithms: [none], jwks_url: https://idp/keys}}\n", `routes[0].auth.jwt: algorithms: "none" is not one of`},
		{"jwt HS without secret", "routes:\n  - path: /a\n    app: echo\n    auth: {jwt: {algorithms: [HS256]}}\n", "routes[0].auth.jwt: secret_file: the HS algorithms need the shared secret"},
		{"jwt missing secret file", "routes:\n  - path: /a\n    app: echo\n    auth: {jwt: {algorithms: [HS256], secret_file: /nonexistent/secret}}\n", "routes[0].auth.jwt: secret_file: open /nonexistent/secret"},
		{"jwt RS without keys", "routes:\n  - path: /a\n    app: echo\n    auth: {jwt: {algorithms: [RS256]}}\n", "routes[0].auth.jwt: key_file or jwks_url"},
		{"jwt both key sources", "routes:\n  - path: /a\n    app: echo\n    auth: {jwt: {algorithms: [RS256], key_file: k.pem, jwks_url: https://idp/keys}}\n", "set key_file or jwks_url, not both"},
		{"jwt bad jwks url", "routes:\n  - path: /a\n    app: echo\n    auth: {jwt: {algorithms: [RS256], jwks_url: ftp://idp/keys}}\n", `jwks_url: "ftp://idp/keys" is not an http or https URL`},
		{"jwt bad carrier", "routes:\n  - path: /a\n    app: echo\n    auth: {jwt: {algorithms: [RS256], jwks_url: https://idp/k, from: [header, query]}}\n", "bad.yaml:4: routes[0].auth.jwt.from[1]: query needs a name"},
		{"jwt unknown key", "routes:\n  - path: /a\n    app: echo\n    auth:\n      jwt: {algorithm: RS256}\n", "bad.yaml:5: routes[0].auth.jwt.algorithm: unknown key"},
		{"forward without url", "routes:\n  - path: /a\n    app: echo\n    auth: {forward: {timeout: 1s}}\n", "routes[0].auth.forward.url: forward auth needs the service's url"},
		{"bad per-user limit", "routes:\n  - path: /a\n    app: echo\n    max_connections_per_user: -1\n", "bad.yaml:4: routes[0].max_connections_per_user:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("bad.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.File != "bad.yaml" {
				t.Fatalf("not a *config.Error naming the file: %T", err)
			}
		})
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	_, err := config.Parse("bad.yaml", []byte("routes:\n  - path: /a\n    app: nope\n    idle_timeout: x\n  - path: b\n    app: echo\n"))
	if err == nil || strings.Count(err.Error(), "\n") < 2 {
		t.Fatalf("want three errors, got: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	cases := map[string]int64{"1": 1, "1024": 1024, "64KiB": 64 << 10, "64k": 64 << 10, "32MiB": 32 << 20, "32m": 32 << 20,
		"1GiB": 1 << 30, "1KB": 1000, "5MB": 5e6, "2 MiB": 2 << 20}
	for in, want := range cases {
		if got, err := config.ParseSize(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1.5MiB", "99999999999999999999", "9223372036854775807GiB", "3 furlongs"} {
		if _, err := config.ParseSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wsgate.yaml")
	os.WriteFile(path, []byte("routes:\n  - path: /a\n    app: echo\n    origin_check: nope\n"), 0o600)
	_, err := config.Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":4: routes[0].origin_check:") {
		t.Fatalf("%v", err)
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

// FuzzParse feeds arbitrary text to the config parser: it must never panic,
// and every error must be a *config.Error naming the file.
func FuzzParse(f *testing.F) {
	f.Add("routes:\n  - path: /a\n    app: echo\n")
	f.Add(string(config.DefaultYAML()))
	f.Add("listen:\n  - address: 127.0.0.1:1\n    tls: {cert: a, key: b}\ndefaults: &d {max_message_size: 1k}\nroutes:\n  - <<: *d\n    path: /x\n    app: chat\n")
	f.Add("routes: [{path: /a, app: echo, trusted_proxies: [unix, 1.2.3.4/8], subprotocols: a}]")
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := config.Parse("fuzz.yaml", []byte(text))
		if err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) || ce.File != "fuzz.yaml" {
				t.Fatalf("error without file: %T %v", err, err)
			}
			return
		}
		for _, r := range cfg.Routes {
			if r.App == "" || !strings.HasPrefix(r.Path, "/") {
				t.Fatalf("accepted route %+v", r)
			}
		}
	})
}

// FuzzParseRoute feeds arbitrary text to ParseRoute, which reads the
// route mod_wsgate builds (as JSON) from httpd's directives: no panic, and
// every error is a *config.Error naming the file.
func FuzzParseRoute(f *testing.F) {
	f.Add(`{"path":"/echo","app":"echo"}`)
	f.Add(`{"path":"/x","max_message_size":"30","origin_check":"trusted","trusted_origins":["https://a.example"],"deflate":true,"idle_timeout":"90s","keepalive_interval":"250ms"}`)
	f.Add(`{"path":"/b","backend":{"socket":"/run/x","mode":"per-client"}}`)
	f.Add(`{"path":"/d","docroot":{"root":"/run","allow":["a*"],"deny":["*"]}}`)
	f.Add(`{"path":"/p","program":{"command":["sh","-c","echo \u0001"]}}`)
	f.Add(`{"path":"/"}`)
	f.Fuzz(func(t *testing.T, text string) {
		r, err := config.ParseRoute("httpd.conf", []byte(text))
		if err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) || ce.File != "httpd.conf" {
				t.Fatalf("error without file: %T %v", err, err)
			}
			return
		}
		if !strings.HasPrefix(r.Path, "/") {
			t.Fatalf("accepted route %+v", r)
		}
	})
}

func TestDeflateConfig(t *testing.T) {
	cfg, err := config.Parse("d.yaml", []byte(`
defaults:
  deflate: true
routes:
  - path: /a
    app: echo
  - path: /b
    app: echo
    deflate: false
  - path: /c
    app: echo
    deflate:
      server_context_takeover: on
      client_context_takeover: off
      server_max_window_bits: 10
      client_max_window_bits: 9
      threshold: 1KiB
      level: 5
  - path: /d
    app: echo
    deflate: {enabled: false, level: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b, c, d := cfg.Routes[0].Policy.Deflate, cfg.Routes[1].Policy.Deflate, cfg.Routes[2].Policy.Deflate, cfg.Routes[3].Policy.Deflate
	if a == nil || a.ServerContextTakeover || !a.ClientContextTakeover {
		t.Fatalf("defaults: %+v", a)
	}
	if b != nil || d != nil {
		t.Fatalf("disabled routes: %+v %+v", b, d)
	}
	if !c.ServerContextTakeover || c.ClientContextTakeover || c.ServerMaxWindowBits != 10 || c.ClientMaxWindowBits != 9 || c.Threshold != 1024 || c.Level != 5 {
		t.Fatalf("route c: %+v", c)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"deflate: {server_max_window_bits: 16}", "routes[0].deflate.server_max_window_bits: must be a window size in bits from 8 to 15"},
		{"deflate: {level: 0}", "routes[0].deflate.level: must be a compression level from 1 to 9"},
		{"deflate: {window: 9}", "routes[0].deflate.window: unknown key"},
		{"deflate: sometimes", "routes[0].deflate: must be true or false"},
	} {
		_, err := config.Parse("d.yaml", []byte("routes:\n  - path: /a\n    app: echo\n    "+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), "d.yaml:4: "+tc.want) {
			t.Errorf("%s: %v", tc.yaml, err)
		}
	}
}

// TestKindErrors: the kinds of application read their own keys, and their
// mistakes are reported like the file's own, with file, line and full key.
func TestKindErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"backend: {mode: mux}", "b.yaml:3: routes[0].backend: needs socket"},
		{"backend: {socket: /x, mode: sideways}", `b.yaml:3: routes[0].backend.mode: must be mux, per-client or direct, not "sideways"`},
		{"backend: {socket: /x, delimiter: nul}", "b.yaml:3: routes[0].backend.delimiter: only applies with protocol: raw"},
		{"backend: {socket: /x, protocol: raw, mode: mux}", "routes[0].backend.mode: protocol: raw needs mode: per-client"},
		{"backend: {address: nowhere}", "routes[0].backend.address: must be host:port"},
		{"backend: {socket: /x, connections: 0}", "routes[0].backend.connections: must be a number from 1 to 1024"},
		{"docroot: {allow: [x]}", "routes[0].docroot.root: needs the directory of sockets"},
		{"docroot: {root: /tmp, allow: ['[']}", "routes[0].docroot.allow[0]: bad glob"},
		{"program: {mode: line}", "routes[0].program.command: needs the program to run"},
		{"program: {command: [cat], max_processes: 0}", "routes[0].program.max_processes: must be a number from 1"},
		{"program: {command: [cat], env: [A]}", "routes[0].program.env: must be a mapping of NAME: value"},
		{"plugin: {library: x.so}", "routes[0].plugin: needs library (the .so) and init"},
		{"app: echo\n    program: {command: [cat]}", "b.yaml:2: routes[0]: set only one of app, backend, docroot, "},
	} {
		_, err := config.Parse("b.yaml", []byte("routes:\n  - path: /a\n    "+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n%v", tc.yaml, err)
		}
	}
}

// TestApplicationErrorsHaveLines: what an application finds wrong when it
// is provisioned and validated (a docroot that does not exist, a program
// that cannot be found) is reported with the route's line and key too.
func TestApplicationErrorsHaveLines(t *testing.T) {
	cfg, err := config.Parse("v.yaml", []byte("routes:\n  - path: /a\n    app: echo\n  - path: /d/\n    docroot: {root: /nonexistent}\n  - path: /p\n    program: {command: [/no/such/program]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cfg.NewGateway(nil)
	for _, want := range []string{"v.yaml:4: routes[1].docroot: docroot /nonexistent is not a directory",
		"v.yaml:6: routes[2].program: program /no/such/program"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in:\n%v", want, err)
		}
	}
}

func TestStatic(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("s.yaml", []byte("static: [{path: /files/, dir: "+dir+"}]\nroutes: [{path: /a, app: echo}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Static) != 1 || cfg.Static[0].Path != "/files/" || cfg.Static[0].Dir != dir {
		t.Fatalf("static: %+v", cfg.Static)
	}
	_, err = config.Parse("b.yaml", []byte("static: [{path: /x/, dir: /nonexistent}]\nroutes: [{path: /a, app: echo}]\n"))
	if err == nil || !strings.Contains(err.Error(), "static[0].dir: /nonexistent is not a directory") {
		t.Errorf("static: %v", err)
	}
}

// TestSyntaxErrorLines: a syntax error names the line at fault, not the
// line where the parser noticed it (often the start of the collection).
func TestSyntaxErrorLines(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		line int
	}{
		{"listen:\n  - address: 1\n   tls: x\nroutes: []\n", 3},
		{"routes:\n  - path: /a\n    app: echo\n    deflate: {level: 1\n  - path: /b\n", 4},
		{"log: {}\nroutes:\n  - path: /a\n    app: echo\n  oops\n", 5},
		{"a: \"unterminated\nb: 2\n", 1},
		{"routes:\n  - path: /a\n    app: echo\n  - path: /b\n     app: x\n", 5},
		{"log:\n\tlevel: debug\n", 2},
	} {
		_, err := config.Parse("s.yaml", []byte(tc.yaml))
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Line != tc.line {
			t.Errorf("%q: %v, want line %d", tc.yaml, err, tc.line)
		}
	}
}

// TestCheckFiles: what the start would read or create is checked, with
// every problem reported at once under its own key.
func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	os.WriteFile(cert, []byte("not a certificate"), 0o600)
	cfg, err := config.Parse("f.yaml", []byte(`
listen:
  - address: 127.0.0.1:1
  - address: 127.0.0.1:2
    tls: {cert: `+dir+`/missing.pem, key: `+dir+`/missing.key}
  - address: 127.0.0.1:3
    tls: {cert: `+cert+`, key: `+cert+`}
  - unix: /nonexistent/dir/ws.sock
log: {output: /nonexistent/dir/wsgate.log}
routes: [{path: /a, app: echo}]
`))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.CheckFiles()
	for _, want := range []string{
		"f.yaml:5: listen[1].tls.cert: " + dir + "/missing.pem: no such file or directory",
		"f.yaml:5: listen[1].tls.key: " + dir + "/missing.key: no such file or directory",
		"f.yaml:7: listen[2].tls: tls: failed to find any PEM data",
		"f.yaml:8: listen[3].unix: cannot create the socket /nonexistent/dir/ws.sock: /nonexistent/dir: no such file or directory",
		"f.yaml:9: log.output: cannot create /nonexistent/dir/wsgate.log",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in:\n%v", want, err)
		}
	}
}

// TestDefaultTourAuth: the commented JWT route of the default
// configuration's tour is a valid route once uncommented.
func TestDefaultTourAuth(t *testing.T) {
	b, err := os.ReadFile("default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var route []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "  # - path: /members/chat") {
			in = true
		}
		if in {
			if !strings.HasPrefix(line, "  # ") {
				break
			}
			route = append(route, "  "+strings.TrimPrefix(line, "  # "))
		}
	}
	if len(route) < 5 {
		t.Fatalf("no JWT route in the tour: %q", route)
	}
	cfg, err := config.Parse("tour.yaml", []byte("routes:\n"+strings.Join(route, "\n")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Routes[0]; r.Policy.Auth == nil || r.Policy.MaxConnectionsPerUser != 5 {
		t.Fatalf("%+v", r.Policy)
	}
}

// TestReadmeConfiguration: the README's configuration example (its tour
// of the file, with the chat behind a JWT) parses as it is written.
func TestReadmeConfiguration(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), "\n## Configuration\n")
	_, block, _ := strings.Cut(rest, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	cfg, err := config.Parse("README.md", []byte(block))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range cfg.Routes {
		found = found || (r.Path == "/members/chat" && r.Policy.Auth != nil)
	}
	if !found {
		t.Fatalf("no JWT-protected chat in the README's example: %+v", cfg.Routes)
	}
}
