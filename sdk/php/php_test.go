// Package php_test runs PHP producers written for apache-ws's PHP
// extension (examples/) on the pure-PHP SDK (apachews.php), behind a real
// wsgate.
package php_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	_ "github.com/wsgate/wsgate/apps/all"
	"github.com/wsgate/wsgate/testkit/testserver"
)

func php(t *testing.T, script, sock string) {
	t.Helper()
	bin := testserver.Peer(t, "php-cli", "php")
	sdk, _ := filepath.Abs("apachews.php")
	cmd := exec.Command(bin, "-d", "auto_prepend_file="+sdk, script, sock)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	testserver.RunProducer(t, cmd, sock)
}

func TestPHPProducers(t *testing.T) {
	dir := t.TempDir()
	php(t, "examples/echo.php", filepath.Join(dir, "echo.ws"))
	php(t, "examples/chat.php", filepath.Join(dir, "chat.ws"))
	d := testserver.ApacheWSGateway(t, dir)
	t.Run("chat", func(t *testing.T) {
		testserver.ApacheWSChat(t, d.URL("/chat"), "de", "hello", "guest2: hello", 0)
	})
}
