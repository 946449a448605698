package program_test

import (
	"io"
	"log/slog"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/frontdoor/daemon"
)

// testserverStartErr builds a daemon and returns its configuration error.
func testserverStartErr(yaml string) (*daemon.Server, error) {
	cfg, err := config.Parse("t.yaml", []byte(yaml))
	if err != nil {
		return nil, err
	}
	return daemon.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}
