// Package gateway connects the WebSocket engine to applications: routes and
// their policies, the Go handler API (the role apache-websocket's plugins
// play), a registry of live connections, and broadcast to a route or to
// named rooms.
//
// It knows nothing about sockets. A front door (the daemon's net/http
// server, or mod_wsgate inside httpd) asks Gateway.Route which route serves
// a path, calls Gateway.Accept to run the opening handshake, writes the 101
// it is given, and starts the returned Pending connection on its transport.
package gateway
