package websocket

// Opcode is a frame's opcode (RFC 6455 §5.2).
type Opcode byte

// Opcodes defined by RFC 6455 §11.8. The others are reserved and close the
// connection with 1002 when a peer uses them.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// IsControl reports whether op is a control opcode (RFC 6455 §5.5).
func (op Opcode) IsControl() bool { return op&0x8 != 0 }

func (op Opcode) known() bool {
	switch op {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
		return true
	}
	return false
}

func (op Opcode) String() string {
	switch op {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return "reserved"
}

// MessageType is the type of a complete data message. Its values are the
// opcodes that start such a message.
type MessageType = Opcode

// The data message types an application sees.
const (
	TextMessage   MessageType = OpText
	BinaryMessage MessageType = OpBinary
)
