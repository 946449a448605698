package websocket

import "unicode/utf8"

// utf8Validator checks UTF-8 (RFC 3629) across arbitrary chunk boundaries,
// so a text message split over frames and reads is rejected at the first
// chunk that holds an invalid sequence rather than when the message ends.
// That fail-fast behaviour is what the Autobahn fuzzing client calls strict.
//
// The zero value is ready to use and is in the accepting state.
type utf8Validator struct {
	need   uint8 // continuation bytes still expected
	lo, hi uint8 // allowed range of the next continuation byte
}

// complete reports whether the bytes seen so far end on a character boundary.
func (v *utf8Validator) complete() bool { return v.need == 0 }

func (v *utf8Validator) reset() { *v = utf8Validator{} }

// write validates the next chunk and reports whether everything seen so far
// can still be the prefix of valid UTF-8.
func (v *utf8Validator) write(p []byte) bool {
	// Finish a sequence left open by the previous chunk, byte by byte.
	for v.need > 0 {
		if len(p) == 0 {
			return true
		}
		if !v.step(p[0]) {
			return false
		}
		p = p[1:]
	}
	// Hand the longest prefix that ends on a character boundary to the
	// standard library, which checks eight ASCII bytes at a time.
	cut := len(p)
	for i := len(p) - 1; i >= 0 && i >= len(p)-3; i-- {
		c := p[i]
		if c&0xC0 == 0x80 {
			continue // continuation byte: keep looking for its lead
		}
		if c >= 0xC0 && i+seqLen(c) > len(p) {
			cut = i // incomplete sequence at the end
		}
		break
	}
	if !utf8.Valid(p[:cut]) {
		return false
	}
	for _, c := range p[cut:] {
		if !v.step(c) {
			return false
		}
	}
	return true
}

// seqLen is the length of the sequence a lead byte announces. Invalid lead
// bytes report 1 so they stay in the prefix and utf8.Valid rejects them.
func seqLen(c byte) int {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 2
	case c >= 0xE0 && c <= 0xEF:
		return 3
	case c >= 0xF0 && c <= 0xF4:
		return 4
	}
	return 1
}

// step advances the byte-wise state machine of RFC 3629 §4.
func (v *utf8Validator) step(c byte) bool {
	if v.need > 0 {
		if c < v.lo || c > v.hi {
			return false
		}
		v.need--
		v.lo, v.hi = 0x80, 0xBF
		return true
	}
	switch {
	case c < 0x80:
		return true
	case c >= 0xC2 && c <= 0xDF:
		v.need, v.lo, v.hi = 1, 0x80, 0xBF
	case c == 0xE0:
		v.need, v.lo, v.hi = 2, 0xA0, 0xBF // no overlong forms
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		v.need, v.lo, v.hi = 2, 0x80, 0xBF
	case c == 0xED:
		v.need, v.lo, v.hi = 2, 0x80, 0x9F // no surrogates
	case c == 0xF0:
		v.need, v.lo, v.hi = 3, 0x90, 0xBF
	case c >= 0xF1 && c <= 0xF3:
		v.need, v.lo, v.hi = 3, 0x80, 0xBF
	case c == 0xF4:
		v.need, v.lo, v.hi = 3, 0x80, 0x8F // nothing above U+10FFFF
	default:
		return false
	}
	return true
}
