package websocket

// MessageType is the type of a data message: TextMessage or
// BinaryMessage. Its values are the opcodes that start such a message
// (RFC 6455 §5.2).
type MessageType byte

// The data message types an application sees.
const (
	TextMessage   MessageType = 0x1
	BinaryMessage MessageType = 0x2
)

// opcode is a frame's opcode. The data opcodes are the MessageType values,
// so a message's type is its first frame's opcode.
type opcode = MessageType

// Opcodes defined by RFC 6455 §11.8. The others are reserved and close the
// connection with 1002 when a peer uses them.
const (
	opContinuation opcode = 0x0
	opText                = TextMessage
	opBinary              = BinaryMessage
	opClose        opcode = 0x8
	opPing         opcode = 0x9
	opPong         opcode = 0xA
)

// isControl reports whether op is a control opcode (RFC 6455 §5.5).
func (op opcode) isControl() bool { return op&0x8 != 0 }

func (op opcode) known() bool {
	switch op {
	case opContinuation, opText, opBinary, opClose, opPing, opPong:
		return true
	}
	return false
}

func (op opcode) String() string {
	switch op {
	case opContinuation:
		return "continuation"
	case opText:
		return "text"
	case opBinary:
		return "binary"
	case opClose:
		return "close"
	case opPing:
		return "ping"
	case opPong:
		return "pong"
	}
	return "reserved"
}
