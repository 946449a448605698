// Package rpc is a JSON-RPC 2.0 dispatcher on top of the producer SDK.
package rpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/wsgate/wsgate/sdk/producer"
)

// Standard error codes (JSON-RPC 2.0 §5.1).
const (
	ParseError     = -32700
	InvalidRequest = -32600
	MethodNotFound = -32601
	InvalidParams  = -32602
	InternalError  = -32603
)

// Error is a JSON-RPC error object; methods return it to choose the code.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Message) }

// Method handles one call; params is the decoded "params" (nil, a
// []any or a map[string]any).
type Method func(c *producer.Client, params any) (any, error)

// Server dispatches requests to registered methods.
type Server struct {
	mu      sync.RWMutex
	methods map[string]Method
	clients atomic.Int64
}

// NewServer returns a server without methods.
func NewServer() *Server { return &Server{methods: map[string]Method{}} }

// Register adds a method.
func (s *Server) Register(name string, m Method) {
	s.mu.Lock()
	s.methods[name] = m
	s.mu.Unlock()
}

// Clients returns the number of connected clients.
func (s *Server) Clients() int64 { return s.clients.Load() }

type request struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  json.RawMessage `json:"method"`
	Params  json.RawMessage `json:"params"`
	ID      json.RawMessage `json:"id"`
}

type response struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  any             `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
	ID      json.RawMessage `json:"id"`
}

var null = json.RawMessage("null")

// Handle answers one message: a request, a notification or a batch. It
// returns nil when nothing is to be sent back.
func (s *Server) Handle(c *producer.Client, msg []byte) []byte {
	msg = bytes.TrimSpace(msg)
	if len(msg) > 0 && msg[0] == '[' {
		var batch []json.RawMessage
		if err := json.Unmarshal(msg, &batch); err != nil {
			return marshal(response{JSONRPC: "2.0", Error: &Error{Code: ParseError, Message: "Parse error"}, ID: null})
		}
		if len(batch) == 0 {
			return marshal(response{JSONRPC: "2.0", Error: &Error{Code: InvalidRequest, Message: "Invalid Request"}, ID: null})
		}
		var out []response
		for _, raw := range batch {
			if r := s.one(c, raw); r != nil {
				out = append(out, *r)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return marshal(out)
	}
	if !json.Valid(msg) {
		return marshal(response{JSONRPC: "2.0", Error: &Error{Code: ParseError, Message: "Parse error"}, ID: null})
	}
	if r := s.one(c, msg); r != nil {
		return marshal(*r)
	}
	return nil
}

func marshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// one handles a single request; nil for a notification.
func (s *Server) one(c *producer.Client, raw json.RawMessage) (resp *response) {
	var req request
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&req); err != nil || req.JSONRPC != "2.0" || len(req.Method) == 0 || req.Method[0] != '"' || !validID(req.ID) {
		return &response{JSONRPC: "2.0", Error: &Error{Code: InvalidRequest, Message: "Invalid Request"}, ID: idOrNull(req.ID)}
	}
	var name string
	json.Unmarshal(req.Method, &name)
	notification := req.ID == nil
	reply := func(result any, e *Error) *response {
		if notification {
			return nil
		}
		return &response{JSONRPC: "2.0", Result: result, Error: e, ID: req.ID}
	}
	s.mu.RLock()
	m := s.methods[name]
	s.mu.RUnlock()
	if m == nil {
		return reply(nil, &Error{Code: MethodNotFound, Message: "Method not found"})
	}
	var params any
	if len(req.Params) > 0 {
		if err := json.Unmarshal(req.Params, &params); err != nil {
			return reply(nil, &Error{Code: InvalidParams, Message: "Invalid params"})
		}
		switch params.(type) {
		case []any, map[string]any:
		default:
			return reply(nil, &Error{Code: InvalidParams, Message: "Invalid params"})
		}
	}
	defer func() {
		if v := recover(); v != nil {
			resp = reply(nil, &Error{Code: InternalError, Message: "Internal error", Data: fmt.Sprint(v)})
		}
	}()
	result, err := m(c, params)
	if err != nil {
		if e, ok := err.(*Error); ok {
			return reply(nil, e)
		}
		return reply(nil, &Error{Code: InternalError, Message: "Internal error", Data: err.Error()})
	}
	if result == nil {
		result = null
	}
	return reply(result, nil)
}

func validID(id json.RawMessage) bool {
	if id == nil {
		return true
	}
	switch id[0] {
	case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'n':
		return true
	}
	return false
}

func idOrNull(id json.RawMessage) json.RawMessage {
	if id == nil || !validID(id) {
		return null
	}
	return id
}

// Numbers adapts a function of two numbers, given by position ([a, b]) or
// by name ({"a": .., "b": ..}).
func Numbers(f func(a, b float64) float64) Method {
	return func(_ *producer.Client, params any) (any, error) {
		var a, b any
		switch p := params.(type) {
		case []any:
			if len(p) != 2 {
				return nil, &Error{Code: InvalidParams, Message: "Invalid params", Data: "two numbers expected"}
			}
			a, b = p[0], p[1]
		case map[string]any:
			a, b = p["a"], p["b"]
		}
		x, ok1 := a.(float64)
		y, ok2 := b.(float64)
		if !ok1 || !ok2 {
			return nil, &Error{Code: InvalidParams, Message: "Invalid params", Data: "two numbers expected"}
		}
		return f(x, y), nil
	}
}

// The producer.Handler side.

func (s *Server) OnOpen(*producer.Client, *producer.Accept) error {
	s.clients.Add(1)
	return nil
}

func (s *Server) OnMessage(c *producer.Client, typ producer.MessageType, data []byte) {
	if typ != producer.Text {
		c.SendText(string(marshal(response{JSONRPC: "2.0", Error: &Error{Code: ParseError, Message: "Parse error", Data: "text messages only"}, ID: null})))
		return
	}
	if out := s.Handle(c, data); out != nil {
		c.Send(producer.Text, out)
	}
}

func (s *Server) OnClose(*producer.Client, uint16, string) { s.clients.Add(-1) }
