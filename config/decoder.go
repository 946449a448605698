package config

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wsgate/wsgate/gateway"
)

// A Decoder reads one value of the configuration for the code that owns
// it. The file's own sections are read with it, and so is each kind of
// application's block (a route's backend:, docroot:, program: ...), which
// that kind's package parses itself: whatever reads a value, every problem
// it reports names the file, the line and the full key, and all of them
// are reported together.
type Decoder struct {
	p   *parser
	n   *yaml.Node
	key string
}

// parser collects the errors of one parse.
type parser struct {
	file string
	errs []error
}

func (p *parser) decoder(n *yaml.Node, key string) *Decoder {
	return &Decoder{p: p, n: resolve(n), key: key}
}

func (p *parser) errorAt(line int, key, msg string) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Key: key, Msg: msg})
}

var lineRE = regexp.MustCompile(`line (\d+): `)

// syntaxError turns a YAML syntax error into an *Error with the line at
// fault. The parser reports the line where it noticed the problem, which
// is often an earlier one (the start of the collection it was in): the
// line at fault is the one after the longest beginning of the file that
// still parses.
func (p *parser) syntaxError(data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: p.file, Msg: msg}
	if m := lineRE.FindStringSubmatchIndex(msg); m != nil {
		e.Line, _ = strconv.Atoi(msg[m[2]:m[3]])
		e.Msg = msg[:m[0]] + msg[m[1]:]
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > 2000 {
		return e // not worth the parses; the parser's line will do
	}
	for n := len(lines) - 1; n >= 0; n-- {
		var doc yaml.Node
		if yaml.Unmarshal([]byte(strings.Join(lines[:n], "")), &doc) == nil {
			e.Line = n + 1
			// The key the error is under: in what parses, the last key
			// before it indented less than its line.
			if len(doc.Content) > 0 && e.Line <= len(lines) {
				l := lines[e.Line-1]
				col := len(l) - len(strings.TrimLeft(l, " -")) + 1
				e.Key = keyBefore(doc.Content[0], "", e.Line, col)
			}
			break
		}
	}
	return e
}

// keyBefore returns the path (routes[2].backend) of the last key in n
// that starts before line and left of col (so that it encloses what is on
// line at col), or "".
func keyBefore(n *yaml.Node, path string, line, col int) string {
	best := ""
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Line >= line {
				break
			}
			if k.Column >= col {
				continue
			}
			p := join(path, k.Value)
			best = p
			if deeper := keyBefore(v, p, line, col); deeper != "" {
				best = deeper
			}
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			if item.Line >= line {
				break
			}
			p := path + "[" + strconv.Itoa(i) + "]"
			if deeper := keyBefore(item, p, line, col); deeper != "" {
				best = deeper
			} else if item.Column <= col {
				best = p
			}
		}
	}
	return best
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Key is the full key of the value, such as routes[2].backend.mode.
func (d *Decoder) Key() string { return d.key }

// Line is the value's line in the file.
func (d *Decoder) Line() int { return d.n.Line }

// Errorf reports a problem with the value.
func (d *Decoder) Errorf(format string, args ...any) {
	d.p.errorAt(d.n.Line, d.key, fmt.Sprintf(format, args...))
}

// ErrorfIn reports a problem with key sub of this value (a missing or
// inconsistent key), at this value's line: "routes[0].backend.socket".
func (d *Decoder) ErrorfIn(sub, format string, args ...any) {
	d.p.errorAt(d.n.Line, join(d.key, sub), fmt.Sprintf(format, args...))
}

// ErrorCount is the number of problems reported in this parse so far, by
// any decoder: a kind compares it before and after reading its block to
// know whether the block was usable.
func (d *Decoder) ErrorCount() int { return len(d.p.errs) }

// Build finishes a kind's Decode: if reading its block reported nothing
// since mark (an earlier ErrorCount), it builds the application, and
// reports build's error, if any, against the block. It returns nil when
// there is no application to return.
func (d *Decoder) Build(mark int, build func() (gateway.Handler, error)) gateway.Handler {
	if d.ErrorCount() != mark {
		return nil
	}
	h, err := build()
	if err != nil {
		d.Errorf("%v", err)
		return nil
	}
	return h
}

// IsMapping reports whether the value is a mapping of keys to values.
func (d *Decoder) IsMapping() bool { return d.n.Kind == yaml.MappingNode }

// IsScalar reports whether the value is a single value (not a list, not a
// mapping, not null).
func (d *Decoder) IsScalar() bool { return d.n.Kind == yaml.ScalarNode && d.n.Tag != "!!null" }

// Fields reads a mapping: each key with a function is given to it, with a
// decoder for its value; unknown and repeated keys are reported.
func (d *Decoder) Fields(fields map[string]func(*Decoder)) {
	if d.n.Kind != yaml.MappingNode {
		d.Errorf("must be a mapping of keys to values")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(d.n.Content); i += 2 {
		k, v := d.n.Content[i], d.n.Content[i+1]
		key := join(d.key, k.Value)
		if seen[k.Value] {
			d.p.errorAt(k.Line, key, "duplicate key")
			continue
		}
		seen[k.Value] = true
		fn, ok := fields[k.Value]
		if !ok {
			names := make([]string, 0, len(fields))
			for name := range fields {
				names = append(names, name)
			}
			sort.Strings(names)
			d.p.errorAt(k.Line, key, "unknown key (known keys here: "+strings.Join(names, ", ")+")")
			continue
		}
		fn(d.p.decoder(v, key))
	}
}

// Has reports whether a mapping has key, set (perhaps to something
// invalid, which its own decoder reports).
func (d *Decoder) Has(key string) bool {
	if d.n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(d.n.Content); i += 2 {
		if d.n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// Scalar returns a single value's text; anything else is reported.
func (d *Decoder) Scalar() (string, bool) {
	if !d.IsScalar() {
		d.Errorf("must be a single value")
		return "", false
	}
	return d.n.Value, true
}

// String stores a single value in dst.
func (d *Decoder) String(dst *string) {
	if s, ok := d.Scalar(); ok {
		*dst = s
	}
}

// OneOf stores a single value in dst when it is one of choices, and
// reports it otherwise.
func (d *Decoder) OneOf(dst *string, choices ...string) {
	s, ok := d.Scalar()
	if !ok {
		return
	}
	for _, c := range choices {
		if s == c {
			*dst = s
			return
		}
	}
	d.Errorf("must be %s, not %q", orList(choices), s)
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// Bool stores a boolean: true or false, or Apache's On and Off.
func (d *Decoder) Bool(dst *bool) {
	s, ok := d.Scalar()
	if !ok {
		return
	}
	// Apache users write On and Off; YAML 1.2 only knows true and false.
	switch strings.ToLower(s) {
	case "true", "on", "yes":
		*dst = true
	case "false", "off", "no":
		*dst = false
	default:
		d.Errorf("must be true or false, not %q", s)
	}
}

// Duration stores a duration with a unit (30s, 1m30s); "0" is zero.
func (d *Decoder) Duration(dst *time.Duration) {
	s, ok := d.Scalar()
	if !ok {
		return
	}
	if s == "0" {
		*dst = 0
		return
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.Errorf("must be a duration with a unit, such as 30s or 1m30s, not %q", s)
		return
	}
	if v < 0 {
		d.Errorf("must not be negative")
		return
	}
	*dst = v
}

// Size stores a size in bytes greater than zero (see ParseSize).
func (d *Decoder) Size(dst *int64) {
	s, ok := d.Scalar()
	if !ok {
		return
	}
	v, err := ParseSize(s)
	if err != nil {
		d.Errorf("%v", err)
		return
	}
	if v <= 0 {
		d.Errorf("must be greater than zero")
		return
	}
	*dst = v
}

// IntSize stores a size that must fit an int of at most 2 GiB, for
// buffers and queues.
func (d *Decoder) IntSize(dst *int) {
	var n int64
	d.Size(&n)
	if n > math.MaxInt32 {
		d.Errorf("must be at most 2GiB")
		return
	}
	if n > 0 {
		*dst = int(n)
	}
}

// Int stores a whole number from lo to hi.
func (d *Decoder) Int(lo, hi int, dst *int) {
	s, ok := d.Scalar()
	if !ok {
		return
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		d.Errorf("must be a number from %d to %d, not %q", lo, hi, s)
		return
	}
	*dst = v
}

// Items returns a decoder for each element of a list, keyed key[i]; a
// single value is a list of one.
func (d *Decoder) Items() []*Decoder {
	if d.IsScalar() {
		return []*Decoder{d}
	}
	if d.n.Kind != yaml.SequenceNode {
		d.Errorf("must be a list")
		return nil
	}
	out := make([]*Decoder, len(d.n.Content))
	for i, item := range d.n.Content {
		out[i] = d.p.decoder(item, fmt.Sprintf("%s[%d]", d.key, i))
	}
	return out
}

// Strings reads a list of single values; a single value is a list of one.
func (d *Decoder) Strings() []string {
	var out []string
	for _, item := range d.Items() {
		if s, ok := item.Scalar(); ok {
			out = append(out, s)
		}
	}
	return out
}

// StringMap reads a mapping of names to single values, in file order, as
// NAME=value.
func (d *Decoder) StringMap() []string {
	if d.n.Kind != yaml.MappingNode {
		d.Errorf("must be a mapping of NAME: value")
		return nil
	}
	var out []string
	for i := 0; i+1 < len(d.n.Content); i += 2 {
		out = append(out, d.n.Content[i].Value+"="+resolve(d.n.Content[i+1]).Value)
	}
	return out
}

// Text returns the value as it would be written in the file, for
// comparing two configurations of the same thing.
func (d *Decoder) Text() string {
	b, err := yaml.Marshal(d.n)
	if err != nil {
		return ""
	}
	return string(b)
}

// ParseSize parses a byte size: a plain number of bytes, or a number with
// a unit. KiB, MiB, GiB and nginx-style k, m, g are powers of 1024; KB, MB
// and GB are powers of 1000.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q is not a size (use bytes, or a unit such as 64KiB or 32MiB)", s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", s)
	}
	mult := int64(1)
	switch unit := strings.TrimSpace(s[i:]); strings.ToLower(unit) {
	case "", "b":
	case "k", "kib":
		mult = 1 << 10
	case "m", "mib":
		mult = 1 << 20
	case "g", "gib":
		mult = 1 << 30
	case "kb":
		mult = 1000
	case "mb":
		mult = 1000 * 1000
	case "gb":
		mult = 1000 * 1000 * 1000
	default:
		return 0, fmt.Errorf("unknown size unit %q in %q", unit, s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}
