package program_test

import (
	"io"
	"log/slog"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/server"
)

// testserverStartErr builds a daemon and returns its configuration error.
func testserverStartErr(yaml string) (*server.Server, error) {
	cfg, err := config.Parse("t.yaml", []byte(yaml))
	if err != nil {
		return nil, err
	}
	return server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}
