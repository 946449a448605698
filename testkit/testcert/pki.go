package testcert

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// PKI is a small certificate authority made with the openssl CLI, an
// implementation independent of Go's: a CA, a server certificate for
// 127.0.0.1 and localhost, client certificates it signed, and one signed
// by another CA that nobody trusts. Every file is PEM, in Dir.
type PKI struct {
	t   testing.TB
	Dir string
	// CA is the CA certificate; ServerCert and ServerKey the server's.
	CA, ServerCert, ServerKey string
	// OtherCA is a second CA, trusted by nobody, for a rogue client.
	OtherCA string
}

// NewPKI makes the CAs and the server certificate in a temporary
// directory.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	p := &PKI{t: t, Dir: t.TempDir()}
	p.CA = p.ca("ca", "wsgate test CA")
	p.OtherCA = p.ca("other-ca", "nobody's CA")
	p.ServerCert, p.ServerKey = p.sign("ca", "server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth")
	return p
}

// Client makes a client certificate named cn with the e-mail address
// email in its SAN, signed by the CA (or, with rogue, by the other CA),
// and returns its certificate and key files.
func (p *PKI) Client(name, cn, email string, rogue bool) (cert, key string) {
	p.t.Helper()
	ca := "ca"
	if rogue {
		ca = "other-ca"
	}
	ext := "extendedKeyUsage=clientAuth"
	if email != "" {
		ext = "subjectAltName=email:" + email + "\n" + ext
	}
	return p.sign(ca, name, "/CN="+cn+"/O=wsgate tests", ext)
}

func (p *PKI) ca(name, cn string) string {
	p.t.Helper()
	cert := filepath.Join(p.Dir, name+".pem")
	p.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(p.Dir, name+".key"), "-out", cert, "-days", "2", "-subj", "/CN="+cn)
	return cert
}

func (p *PKI) sign(ca, name, subj, ext string) (cert, key string) {
	p.t.Helper()
	cert, key = filepath.Join(p.Dir, name+".pem"), filepath.Join(p.Dir, name+".key")
	csr, extFile := filepath.Join(p.Dir, name+".csr"), filepath.Join(p.Dir, name+".ext")
	if err := os.WriteFile(extFile, []byte(ext+"\n"), 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", subj)
	p.openssl("x509", "-req", "-in", csr, "-CA", filepath.Join(p.Dir, ca+".pem"), "-CAkey", filepath.Join(p.Dir, ca+".key"),
		"-CAcreateserial", "-out", cert, "-days", "1", "-extfile", extFile)
	return cert, key
}

func (p *PKI) openssl(args ...string) {
	p.t.Helper()
	if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
		p.t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
