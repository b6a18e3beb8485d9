package kafka

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"math"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/tributary/tributary/core"
)

func TestVarintLen(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 63, -64, 64, -65, 8191, 8192, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64} {
		if got, want := varintLen(v), len(binary.AppendVarint(nil, v)); got != want {
			t.Errorf("varintLen(%d) = %d, want %d", v, got, want)
		}
	}
}

func TestRecordLenMatchesEncoding(t *testing.T) {
	headers := appendVarintString(appendVarintString(nil, "ce_id"), "e-1")
	for _, tc := range []struct {
		name       string
		key, value []byte
		offset     int32
		ts         int64
	}{
		{name: "key and value", key: []byte("k"), value: []byte(strings.Repeat("v", 300)), offset: 70, ts: 5},
		{name: "no key", value: []byte("v"), offset: 0, ts: -3},
		{name: "no value", key: []byte("k"), offset: 100000, ts: 1 << 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, total := recordLen(tc.offset, tc.ts, tc.key, tc.value, 1, len(headers))
			rec := appendRecord(nil, body, tc.offset, tc.ts, tc.key, tc.value, 1, headers)
			if len(rec) != total {
				t.Fatalf("record of %d bytes, recordLen says %d", len(rec), total)
			}
			if n, k := binary.Varint(rec); int(n) != body || k+body != total {
				t.Fatalf("length prefix %d, want %d", n, body)
			}
		})
	}
}

func TestAddSeqWraps(t *testing.T) {
	for _, tc := range []struct{ seq, n, want int32 }{
		{0, 5, 5},
		{math.MaxInt32 - 5, 5, math.MaxInt32},
		{math.MaxInt32 - 5, 6, 0},
		{math.MaxInt32, 1, 0},
		{math.MaxInt32 - 1, 10, 8},
	} {
		if got := addSeq(tc.seq, tc.n); got != tc.want {
			t.Errorf("addSeq(%d, %d) = %d, want %d", tc.seq, tc.n, got, tc.want)
		}
	}
}

// fakeSASLBroker answers one connection's SASL handshake and authenticate
// requests, accepting only user:secret, and reports what it read.
func fakeSASLBroker(t *testing.T, tc *tls.Config) (addr string, got chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		read := func() (key int16, corr int32, body []byte, err error) {
			var size [4]byte
			if _, err = io.ReadFull(br, size[:]); err != nil {
				return
			}
			req := make([]byte, binary.BigEndian.Uint32(size[:]))
			if _, err = io.ReadFull(br, req); err != nil {
				return
			}
			r := reader{b: req}
			key = r.int16()
			r.int16()
			corr = r.int32()
			r.string()
			return key, corr, r.b, r.err
		}
		write := func(corr int32, body []byte) {
			out := binary.BigEndian.AppendUint32(nil, uint32(4+len(body)))
			out = binary.BigEndian.AppendUint32(out, uint32(corr))
			c.Write(append(out, body...))
		}
		key, corr, body, err := read()
		if err != nil || key != apiSASLHandshake {
			got <- "handshake expected"
			return
		}
		r := reader{b: body}
		mech := r.string()
		resp := binary.BigEndian.AppendUint16(nil, 0)
		resp = binary.BigEndian.AppendUint32(resp, 1)
		write(corr, appendString(resp, "PLAIN"))
		key, corr, body, err = read()
		if err != nil || key != apiSASLAuthenticate {
			got <- "authenticate expected"
			return
		}
		r = reader{b: body}
		auth := string(r.take(int(r.int32())))
		code, msg := uint16(0), ""
		if auth != "\x00user\x00secret" {
			code, msg = uint16(sarama.ErrSASLAuthenticationFailed), "bad credentials"
		}
		resp = binary.BigEndian.AppendUint16(nil, code)
		resp = appendString(resp, msg)
		resp = binary.BigEndian.AppendUint32(resp, 0)
		write(corr, resp)
		got <- mech + " " + strings.ReplaceAll(auth, "\x00", "|")
	}()
	return ln.Addr().String(), got
}

// selfSigned returns a server TLS configuration for 127.0.0.1 and a client
// one that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "broker"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client
}

func TestDialBrokerSASLPlain(t *testing.T) {
	for _, tc := range []struct {
		name, password string
		tls            bool
		wantErr        error
	}{
		{name: "accepted", password: "secret"},
		{name: "accepted over TLS", password: "secret", tls: true},
		{name: "refused", password: "wrong", wantErr: sarama.ErrSASLAuthenticationFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := sarama.NewConfig()
			var serverTLS *tls.Config
			if tc.tls {
				serverTLS, sc.Net.TLS.Config = selfSigned(t)
				sc.Net.TLS.Enable = true
			}
			addr, got := fakeSASLBroker(t, serverTLS)
			sc.Net.SASL.Enable = true
			sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
			sc.Net.SASL.User = "user"
			sc.Net.SASL.Password = tc.password
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := dialBroker(ctx, addr, sc)
			if c != nil {
				c.close()
			}
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("dial: %v, want %v", err, tc.wantErr)
			}
			if seen := <-got; seen != "PLAIN |user|"+tc.password {
				t.Fatalf("broker read %q", seen)
			}
		})
	}
}

// decodeHeaders reads n record headers as appendHeaders writes them.
func decodeHeaders(t *testing.T, b []byte, n int) map[string]string {
	t.Helper()
	out := map[string]string{}
	next := func() string {
		l, k := binary.Varint(b)
		if k <= 0 || l < 0 || int(l) > len(b)-k {
			t.Fatalf("bad header encoding at %x", b)
		}
		v := string(b[k : k+int(l)])
		b = b[k+int(l):]
		return v
	}
	for range n {
		k := next()
		out[k] = next()
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes after %d headers", len(b), n)
	}
	return out
}

// TestEventHeadersMatchMessage checks that an event published as it is
// gets exactly the headers of its ToMessage form, whichever optional
// attributes are set.
func TestEventHeadersMatchMessage(t *testing.T) {
	full := core.Event{
		ID: "0b7c6a1e-0000-5000-8000-000000000001", Source: "/erp", SpecVersion: core.SpecVersion, Type: "t",
		Subject: "s", Time: time.Date(2026, 5, 6, 7, 8, 9, 10, time.FixedZone("x", 7200)), DataContentType: "application/json",
		DataSchema: "urn:s", PartitionKey: "k", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	events := []core.Event{full, {ID: "i", Source: "/s", SpecVersion: "1.0", Type: "t"}}
	for _, edit := range []func(*core.Event){
		func(e *core.Event) { e.Subject = "" }, func(e *core.Event) { e.Time = time.Time{} },
		func(e *core.Event) { e.DataSchema = "" }, func(e *core.Event) { e.PartitionKey = "" },
		func(e *core.Event) { e.TraceParent = "" }, func(e *core.Event) { e.DataContentType = "" },
	} {
		e := full
		edit(&e)
		events = append(events, e)
	}
	for i, e := range events {
		got, gn := appendEventHeaders(nil, &e)
		want, wn := appendHeaders(nil, e.ToMessage())
		if g, w := decodeHeaders(t, got, gn), decodeHeaders(t, want, wn); !maps.Equal(g, w) {
			t.Errorf("event %d: headers %q, message headers %q", i, g, w)
		}
	}
}
