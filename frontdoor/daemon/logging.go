package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/wsgate/wsgate/config"
)

// LogOutput is where the daemon's log goes. Its level can change and its
// file can be reopened while the daemon runs: a reload reopens it, which
// is what logrotate's postrotate (kill -HUP) expects.
type LogOutput struct {
	level  slog.LevelVar
	format string

	mu   sync.Mutex
	w    io.Writer
	f    *os.File
	path string
}

// NewLogger builds the logger a configuration asks for, and its output.
func NewLogger(c config.Log) (*slog.Logger, *LogOutput, error) {
	o := &LogOutput{format: c.Format}
	if err := o.Apply(c); err != nil {
		return nil, nil, err
	}
	opts := &slog.HandlerOptions{Level: &o.level}
	if c.Format == "json" {
		return slog.New(pidHandler{slog.NewJSONHandler(o, opts)}), o, nil
	}
	return slog.New(pidHandler{slog.NewTextHandler(o, opts)}), o, nil
}

// pidHandler ends every line with the process's pid: after a binary
// upgrade the old and the new process write to the same log until the old
// one has drained. At the end, so that a line still starts with its
// message and its own fields (scripts read "msg=listening address=").
type pidHandler struct{ slog.Handler }

var pidAttr = slog.Int("pid", os.Getpid())

func (h pidHandler) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(pidAttr)
	return h.Handler.Handle(ctx, r)
}

func (h pidHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return pidHandler{h.Handler.WithAttrs(as)}
}

func (h pidHandler) WithGroup(name string) slog.Handler { return pidHandler{h.Handler.WithGroup(name)} }

// Apply takes a (re)loaded configuration's log settings: the level, and
// the output, which is reopened even when its path has not changed. The
// format is chosen at startup only.
func (o *LogOutput) Apply(c config.Log) error {
	var w io.Writer
	var f *os.File
	path := c.Output
	switch strings.ToLower(c.Output) {
	case "", "stderr":
		w, path = os.Stderr, ""
	case "stdout":
		w, path = os.Stdout, ""
	default:
		var err error
		f, err = os.OpenFile(c.Output, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("log output: %w", err)
		}
		w = f
	}
	o.level.Set(c.Level)
	o.mu.Lock()
	old := o.f
	o.w, o.f, o.path = w, f, path
	o.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// FormatChanged reports whether c asks for another format than the one
// the logger was built with (a restart applies it).
func (o *LogOutput) FormatChanged(c config.Log) bool { return c.Format != o.format }

func (o *LogOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Write(p)
}

// Close closes a log file.
func (o *LogOutput) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f != nil {
		return o.f.Close()
	}
	return nil
}
