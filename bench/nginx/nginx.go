// Package nginx writes the configuration of Debian's nginx proxying
// WebSockets, for the harnesses that put it in front of a server: one
// worker, HTTP/1.1 to the upstream with Upgrade and Connection passed on,
// as nginx's "WebSocket proxying" documentation sets it up.
package nginx

import (
	"fmt"
	"os"
	"path/filepath"
)

// Config writes nginx.conf into dir (with the temporary directories its
// http block names) for a server on listen proxying every path to
// upstream, with conns worker connections and the descriptors for them,
// and extra directives in the location (proxy_set_header lines). It
// returns the file's path, for nginx -c FILE -p DIR.
func Config(dir, listen, upstream string, conns int, extra string) (string, error) {
	for _, d := range []string{"body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	conf := filepath.Join(dir, "nginx.conf")
	return conf, os.WriteFile(conf, []byte(fmt.Sprintf(`daemon off;
user root;
worker_processes 1;
worker_rlimit_nofile %[4]d;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections %[5]d; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    server {
        listen %[2]s;
        location / {
            proxy_pass http://%[3]s;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
%[6]s            proxy_read_timeout 1h;
        }
    }
}
`, dir, listen, upstream, 2*conns, conns, extra)), 0o644)
}
