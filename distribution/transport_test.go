package distribution

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// dialMap returns a transport that connects to addresses listed in m
// instead of resolving names, so tests can use non-loopback host names.
func dialMap(m map[string]string) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if to, ok := m[addr]; ok {
			addr = to
		}
		return d.DialContext(ctx, network, addr)
	}
	return tr
}

func TestInsecureHosts(t *testing.T) {
	c, err := New(Options{InsecureRegistries: []string{"myreg:5000", "Other.Example", "10.1.0.0/16"}})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"localhost":          true,
		"localhost:5000":     true,
		"127.0.0.1:5000":     true,
		"127.8.9.10":         true,
		"[::1]:5000":         true,
		"myreg:5000":         true,
		"myreg:5001":         false,
		"myreg":              false,
		"other.example":      true,
		"10.1.2.3:443":       true,
		"10.2.0.1":           false,
		"docker.io":          false,
		"registry.test:5000": false,
	} {
		if got := c.insecure(host); got != want {
			t.Errorf("insecure(%q) = %v, want %v", host, got, want)
		}
	}
	if _, err := New(Options{InsecureRegistries: []string{"http://myreg"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("scheme in insecure registry: %v", err)
	}
	if _, err := New(Options{InsecureRegistries: []string{"10.0.0.0/99"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad CIDR: %v", err)
	}
}

// An insecure registry that speaks plain HTTP is tried over HTTPS first and
// then over HTTP, and the decision is remembered. Any other registry never
// falls back to plain HTTP.
func TestHTTPFallback(t *testing.T) {
	f := newFakeRegistry(t)
	f.putPlugin("x", "1.0")

	t.Run("loopback is insecure", func(t *testing.T) {
		c := newTestClient(t, Options{})
		if c.plainHTTP(f.host()) {
			t.Fatal("decided before trying")
		}
		if _, err := c.Resolve(t.Context(), target(t, f.host()+"/x:1.0")); err != nil {
			t.Fatal(err)
		}
		if !c.plainHTTP(f.host()) {
			t.Fatal("plain HTTP decision not cached")
		}
	})

	named := "registry.test:" + f.port()
	tr := dialMap(map[string]string{named: f.host()})

	t.Run("secure host does not fall back", func(t *testing.T) {
		before := len(f.seen())
		c := newTestClient(t, Options{Transport: tr})
		_, err := c.Resolve(t.Context(), target(t, named+"/x:1.0"))
		if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
			t.Fatalf("err = %v, want Unavailable naming the scheme mismatch", err)
		}
		if n := len(f.seen()) - before; n != 0 {
			t.Fatalf("registry saw %d plain HTTP requests", n)
		}
		if c.plainHTTP(named) {
			t.Fatal("secure host marked plain HTTP")
		}
	})

	t.Run("listed host falls back", func(t *testing.T) {
		c := newTestClient(t, Options{Transport: tr, InsecureRegistries: []string{named}})
		if _, err := c.Resolve(t.Context(), target(t, named+"/x:1.0")); err != nil {
			t.Fatal(err)
		}
	})
}

// X-Meta-* headers reach every registry request; other headers given as meta
// headers do not; the User-Agent is ours.
func TestMetaHeadersAndUserAgent(t *testing.T) {
	f := newFakeRegistry(t)
	f.putPlugin("x", "1.0")
	c := newTestClient(t, Options{UserAgent: "pluginsd-test/1"})
	tg := target(t, f.host()+"/x:1.0")
	tg.MetaHeaders = map[string][]string{
		"X-Meta-Trace":  {"abc"},
		"x-meta-lower":  {"1", "2"},
		"Authorization": {"Bearer stolen"},
	}
	res, err := c.Resolve(t.Context(), tg)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.FetchBlob(t.Context(), tg, res.Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()

	reqs := f.seen()
	if len(reqs) < 3 {
		t.Fatalf("only %d requests", len(reqs))
	}
	for _, r := range reqs {
		if r.Header.Get("X-Meta-Trace") != "abc" || strings.Join(r.Header.Values("X-Meta-Lower"), ",") != "1,2" {
			t.Errorf("%s %s: meta headers %v", r.Method, r.URL, r.Header)
		}
		if r.Header.Get("Authorization") != "" {
			t.Errorf("%s %s: a non-meta header was forwarded", r.Method, r.URL)
		}
		if r.Header.Get("User-Agent") != "pluginsd-test/1" {
			t.Errorf("%s %s: User-Agent %q", r.Method, r.URL, r.Header.Get("User-Agent"))
		}
	}
}

// certPair makes a self-signed certificate usable as its own CA.
func certPair(t *testing.T, cn string, usage x509.ExtKeyUsage, dns ...string) (certPEM, keyPEM []byte, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		DNSNames:              dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, pair
}

// A registry with a private CA is trusted through <CertsDir>/<host:port>/*.crt
// and authenticated to with *.cert + *.key; without them the TLS failure is
// reported and plain HTTP is not tried.
func TestCertsDir(t *testing.T) {
	serverCA, _, serverPair := certPair(t, "registry.test", x509.ExtKeyUsageServerAuth, "registry.test")
	clientCert, clientKey, _ := certPair(t, "pluginsd", x509.ExtKeyUsageClientAuth)
	clientPool := x509.NewCertPool()
	clientPool.AppendCertsFromPEM(clientCert)

	f := newFakeRegistryTLS(t, &tls.Config{
		Certificates: []tls.Certificate{serverPair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientPool,
		MinVersion:   tls.VersionTLS12,
	})
	f.putPlugin("x", "1.0")
	host := "registry.test:" + f.port()
	tr := dialMap(map[string]string{host: f.host()})

	write := func(dir, name string, b []byte) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	resolve := func(certs string) error {
		c := newTestClient(t, Options{Transport: tr, CertsDir: certs})
		_, err := c.Resolve(t.Context(), target(t, host+"/x:1.0"))
		return err
	}

	t.Run("unknown CA", func(t *testing.T) {
		err := resolve(t.TempDir())
		if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v, want Unavailable certificate error", err)
		}
	})
	t.Run("CA but no client certificate", func(t *testing.T) {
		certs := t.TempDir()
		write(filepath.Join(certs, host), "ca.crt", serverCA)
		if err := resolve(certs); !errdefs.IsUnavailable(err) {
			t.Fatalf("err = %v, want Unavailable", err)
		}
	})
	t.Run("CA and client certificate", func(t *testing.T) {
		certs := t.TempDir()
		dir := filepath.Join(certs, host)
		write(dir, "ca.crt", serverCA)
		write(dir, "client.cert", clientCert)
		write(dir, "client.key", clientKey)
		if err := resolve(certs); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("certificates added later are picked up", func(t *testing.T) {
		certs := t.TempDir()
		dir := filepath.Join(certs, host)
		write(dir, "README", []byte("nothing yet"))
		c := newTestClient(t, Options{Transport: tr, CertsDir: certs})
		if _, err := c.Resolve(t.Context(), target(t, host+"/x:1.0")); err == nil {
			t.Fatal("resolved without the CA")
		}
		write(dir, "ca.crt", serverCA)
		write(dir, "client.cert", clientCert)
		write(dir, "client.key", clientKey)
		later := time.Now().Add(time.Minute) // do not depend on timestamp granularity
		if err := os.Chtimes(dir, later, later); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Resolve(t.Context(), target(t, host+"/x:1.0")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("key without certificate", func(t *testing.T) {
		certs := t.TempDir()
		write(filepath.Join(certs, host), "client.key", clientKey)
		if err := resolve(certs); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "missing client certificate client.cert") {
			t.Fatalf("err = %v, want FailedPrecondition", err)
		}
	})
	t.Run("bad CA file", func(t *testing.T) {
		certs := t.TempDir()
		write(filepath.Join(certs, host), "ca.crt", []byte("not PEM"))
		if err := resolve(certs); !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("err = %v, want FailedPrecondition", err)
		}
	})
}

// The default transport honours HTTPS_PROXY and NO_PROXY like dockerd.
// net/http reads the proxy environment once per process, so each case runs
// in a child process of this test binary.
func TestProxyFromEnvironment(t *testing.T) {
	if os.Getenv("PLUGINSD_PROXY_CHILD") != "" {
		proxyChild(t)
		return
	}
	f := newFakeRegistryTLS(t, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{mustLocalPair(t)}})
	f.putPlugin("x", "1.0")

	var (
		mu       sync.Mutex
		connects []string
	)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		mu.Lock()
		connects = append(connects, r.Host)
		mu.Unlock()
		upstream, err := net.Dial("tcp", f.host())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		go func() { io.Copy(upstream, buf); upstream.Close() }()
		io.Copy(conn, upstream)
		conn.Close()
	}))
	defer proxy.Close()

	run := func(noProxy string) (string, error) {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestProxyFromEnvironment$", "-test.v")
		cmd.Env = append(os.Environ(),
			"PLUGINSD_PROXY_CHILD=1",
			"HTTPS_PROXY="+proxy.URL, "https_proxy="+proxy.URL,
			"NO_PROXY="+noProxy, "no_proxy="+noProxy,
		)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run("")
	if err != nil || !strings.Contains(out, "CHILD RESOLVED") {
		t.Fatalf("child through proxy: %v\n%s", err, out)
	}
	mu.Lock()
	got := strings.Join(connects, ",")
	connects = nil
	mu.Unlock()
	if got != "registry.test:443" {
		t.Errorf("proxy saw CONNECT %q, want registry.test:443", got)
	}

	out, _ = run("registry.test")
	if !strings.Contains(out, "CHILD FAILED") {
		t.Fatalf("child with NO_PROXY:\n%s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(connects) != 0 {
		t.Errorf("NO_PROXY ignored: proxy saw %v", connects)
	}
}

// proxyChild resolves registry.test/x:1.0 with the default transport.
func proxyChild(t *testing.T) {
	t.Helper()
	c, err := New(Options{InsecureRegistries: []string{"registry.test"}, CertsDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c.retryPolicy = noRetries
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := c.Resolve(ctx, target(t, "registry.test/x:1.0")); err != nil {
		t.Log("CHILD FAILED:", err)
		return
	}
	t.Log("CHILD RESOLVED")
}

// mustLocalPair is a throwaway server certificate.
func mustLocalPair(t *testing.T) tls.Certificate {
	t.Helper()
	_, _, pair := certPair(t, "registry.test", x509.ExtKeyUsageServerAuth, "registry.test")
	return pair
}

// docker.io names are served by registry-1.docker.io, as in dockerd.
func TestDockerHubHost(t *testing.T) {
	f := newFakeRegistryTLS(t, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{mustLocalPair(t)}})
	f.putPlugin("library/hubplugin", "1.0")
	c := newTestClient(t, Options{
		Transport:          dialMap(map[string]string{"registry-1.docker.io:443": f.host()}),
		InsecureRegistries: []string{"registry-1.docker.io"}, // the test certificate is not Docker Hub's
	})
	if _, err := c.Resolve(t.Context(), target(t, "hubplugin:1.0")); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.seen() {
		if r.Host != "registry-1.docker.io" || !strings.HasPrefix(r.URL.Path, "/v2/library/hubplugin/") {
			t.Errorf("request to %s %s", r.Host, r.URL.Path)
		}
	}
	_, err := c.Resolve(t.Context(), target(t, "nosuch:1.0"))
	if !errdefs.IsNotFound(err) || err.Error() != "docker.io/library/nosuch:1.0: not found" {
		t.Errorf("err = %v", err)
	}
}

// TestTransportForConcurrent: the first requests to several hosts at once
// build their transports at once. Cloning the template sets up its TLS
// settings on first use, so reading them meanwhile was a data race (seen
// under -race in TestConcurrentInstall on a loaded machine).
func TestTransportForConcurrent(t *testing.T) {
	for range 50 { // each round a new client: the set-up happens once per template
		base := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13}, ForceAttemptHTTP2: true}
		c := newTestClient(t, Options{Transport: base, CertsDir: t.TempDir()})
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				rt, err := c.transportFor(fmt.Sprintf("registry%d.test:443", i))
				if err != nil {
					t.Error(err)
					return
				}
				if tr, ok := rt.(*http.Transport); !ok || tr.TLSClientConfig == nil || tr.TLSClientConfig.MinVersion != tls.VersionTLS13 {
					t.Errorf("transport for host %d does not carry the base TLS settings: %#v", i, rt)
				}
			})
		}
		wg.Wait()
	}
}
