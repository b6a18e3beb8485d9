package http_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// TestTLS: an https endpoint is reached with the CA of ca_file, with
// insecure_skip_verify, and with a client certificate when it asks for
// one; without them, the delivery is not made.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	clientCert, clientKey, clientPool := clientCertificate(t, dir)

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: clientPool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(dir, "server-ca.pem")
	writePEM(t, caFile, "CERTIFICATE", srv.Certificate().Raw)

	mtls := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	mtls.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientPool}
	mtls.Config.ErrorLog = log.New(io.Discard, "", 0)
	mtls.StartTLS()
	t.Cleanup(mtls.Close)

	tests := []struct {
		name string
		url  string
		tls  map[string]any
		want core.Status
	}{
		{name: "ca_file", url: srv.URL, tls: map[string]any{"ca_file": caFile}, want: core.StatusDelivered},
		{name: "unknown authority", url: srv.URL, want: core.StatusRetry},
		{name: "insecure_skip_verify", url: srv.URL, tls: map[string]any{"insecure_skip_verify": true}, want: core.StatusDelivered},
		{name: "client certificate", url: mtls.URL, tls: map[string]any{"ca_file": caFile, "cert_file": clientCert, "key_file": clientKey}, want: core.StatusDelivered},
		{name: "client certificate missing", url: mtls.URL, tls: map[string]any{"ca_file": caFile}, want: core.StatusRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values := map[string]any{"url": tt.url + "/hooks"}
			if tt.tls != nil {
				values["tls"] = tt.tls
			}
			s := open(t, values)
			r := writeWithin(t, s, context.Background(), deliveries(event("e-1", "A-1", nil)))[0]
			if r.Status != tt.want {
				t.Errorf("result = %+v, want %v", r, tt.want)
			}
		})
	}
}

// clientCertificate writes a self-signed client certificate and its key
// to dir and returns their files and a pool that trusts it.
func clientCertificate(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tributary"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
