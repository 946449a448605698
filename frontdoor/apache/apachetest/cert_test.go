package apachetest

import (
	"crypto/x509"
	"testing"

	"github.com/wsgate/wsgate/testkit/testcert"
)

// selfSigned writes a certificate for 127.0.0.1 into dir.
func selfSigned(t *testing.T, dir string) (cert, key string, pool *x509.CertPool) {
	return testcert.Write(t, dir)
}
