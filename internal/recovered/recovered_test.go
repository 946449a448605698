package recovered

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGoRecovers: a panic in a goroutine started by Go is logged with
// where it came from, its value and its stack, and the process goes on.
func TestGoRecovers(t *testing.T) {
	var buf syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	defer slog.SetDefault(old)
	done := make(chan struct{})
	Go("the test's goroutine", func() {
		defer close(done)
		panic("boom")
	})
	<-done
	// The deferred close runs before Log: wait for the line.
	for range 1000 {
		if strings.Contains(buf.String(), "panic recovered") {
			break
		}
		time.Sleep(time.Millisecond)
	}
	out := buf.String()
	for _, want := range []string{"panic recovered", `in="the test's goroutine"`, "panic=boom", "recovered_test.go"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}

func TestLogWithoutPanic(t *testing.T) {
	var buf syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	defer slog.SetDefault(old)
	func() { defer Log("no panic") }()
	if buf.String() != "" {
		t.Fatalf("logged without a panic: %s", buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
