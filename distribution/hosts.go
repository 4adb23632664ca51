package distribution

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// splitHost returns the lower-case host name of host[:port] without brackets.
func splitHost(hostport string) string {
	hostport = strings.ToLower(hostport)
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// isLoopback reports whether host[:port] names this machine: "localhost" or
// a loopback address.
func isLoopback(hostport string) bool {
	name := splitHost(hostport)
	if name == "localhost" {
		return true
	}
	addr, err := netip.ParseAddr(name)
	return err == nil && addr.Unmap().IsLoopback()
}

// insecure reports whether host[:port] may be reached over plain HTTP and
// without certificate verification: loopback, a listed host[:port], or an
// address inside a listed CIDR. Names are not resolved for the CIDR check.
func (c *Client) insecure(hostport string) bool {
	if isLoopback(hostport) || c.insecureHosts[strings.ToLower(hostport)] {
		return true
	}
	addr, err := netip.ParseAddr(splitHost(hostport))
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range c.insecureNets {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// sameHost reports whether u addresses host[:port], ignoring default ports.
func sameHost(u *url.URL, hostport string) bool {
	return canonicalHostPort(u.Scheme, u.Host) == canonicalHostPort(u.Scheme, hostport)
}

func canonicalHostPort(scheme, hostport string) string {
	hostport = strings.ToLower(hostport)
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		if (scheme == "https" && p == "443") || (scheme == "http" && p == "80") {
			return h
		}
	}
	return hostport
}

// realmBlocklist is the set of addresses a bearer realm may not point at.
// oras blocks loopback and link-local realms by default so a registry cannot
// aim credentials at local services; a registry that is itself on this
// machine may use a token service on this machine too (localhost:5001 with a
// realm on 127.0.0.1:5001 is the usual test setup).
func realmBlocklist(registryHost string) []netip.Prefix {
	if !isLoopback(registryHost) {
		return nil // oras defaults
	}
	var out []netip.Prefix
	for _, p := range auth.DefaultBlockedRealmPrefixes() {
		if p.Addr().IsLoopback() {
			continue
		}
		out = append(out, p)
	}
	return out
}

// credentialKey identifies a credential for a host without keeping it in
// clear in a map key.
func credentialKey(host string, a Auth) string {
	h := sha256.New()
	for _, s := range []string{strings.ToLower(host), a.Username, a.Password, a.IdentityToken, a.RegistryToken} {
		h.Write([]byte(strconv.Itoa(len(s)) + ":" + s + ";")) // length-prefixed: no ambiguity between fields
	}
	return hex.EncodeToString(h.Sum(nil))
}

// transportFor returns the round tripper for requests to host[:port], with
// the TLS settings of CertsDir and the insecure-registry list applied. The
// transport is cached per host and rebuilt when the host's certs directory
// changes (its modification time, so adding or removing files is noticed).
func (c *Client) transportFor(hostport string) (http.RoundTripper, error) {
	if c.baseTransport == nil {
		return c.base, nil
	}
	dir, ok := c.hostCertsDir(hostport)
	stamp := ""
	if ok {
		if fi, err := os.Stat(dir); err == nil { // #nosec G703 -- hostCertsDir keeps dir inside CertsDir
			stamp = fi.ModTime().String()
		}
	}
	st := c.state(hostport)
	c.mu.Lock()
	if st.transport != nil && st.certsStamp == stamp {
		rt := st.transport
		c.mu.Unlock()
		return rt, nil
	}
	c.mu.Unlock()

	cfg, err := c.tlsConfig(hostport, dir, ok)
	if err != nil {
		return nil, err
	}
	t := c.baseTransport.Clone()
	t.TLSClientConfig = cfg

	c.mu.Lock()
	defer c.mu.Unlock()
	if st.transport != nil && st.certsStamp == stamp { // another goroutine won
		return st.transport, nil
	}
	if old, ok := st.transport.(*http.Transport); ok {
		old.CloseIdleConnections()
	}
	st.transport, st.certsStamp = t, stamp
	return t, nil
}

// hostCertsDir is <CertsDir>/<host[:port]>, or false when hostport could
// name something outside CertsDir (a redirect may carry any host).
func (c *Client) hostCertsDir(hostport string) (string, bool) {
	if hostport == "" || hostport == "." || hostport == ".." || strings.ContainsAny(hostport, `/\`) || filepath.Base(hostport) != hostport {
		return "", false
	}
	return filepath.Join(c.certsDir, hostport), true
}

// tlsConfig builds the TLS configuration for host[:port] from the base
// transport's, the host's certs directory (Docker convention: every *.crt is
// an extra CA on top of the system roots, every *.cert needs a *.key of the
// same base name and the reverse), and the insecure-registry list.
func (c *Client) tlsConfig(hostport, dir string, haveDir bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.baseTLS != nil {
		cfg = c.baseTLS.Clone()
		if cfg.MinVersion == 0 {
			cfg.MinVersion = tls.VersionTLS12
		}
	}
	if c.insecure(hostport) {
		cfg.InsecureSkipVerify = true // #nosec G402 -- dockerd's insecure-registry semantics
	}
	if !haveDir {
		return cfg, nil
	}
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return cfg, nil
	}
	if err != nil {
		return nil, certsError(dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasSuffix(name, ".crt"):
			pem, err := os.ReadFile(path) // #nosec G703 -- path is inside the host's certs directory
			if err != nil {
				return nil, certsError(dir, err)
			}
			if cfg.RootCAs == nil {
				pool, err := x509.SystemCertPool()
				if err != nil {
					pool = x509.NewCertPool()
				}
				cfg.RootCAs = pool
			}
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, certsError(dir, fmt.Errorf("%s: no PEM certificate found", name))
			}
		case strings.HasSuffix(name, ".cert"):
			keyName := strings.TrimSuffix(name, ".cert") + ".key"
			pair, err := tls.LoadX509KeyPair(path, filepath.Join(dir, keyName))
			if err != nil {
				return nil, certsError(dir, fmt.Errorf("client certificate %s: %w", name, err))
			}
			cfg.Certificates = append(cfg.Certificates, pair)
		case strings.HasSuffix(name, ".key"):
			certName := strings.TrimSuffix(name, ".key") + ".cert"
			if _, err := os.Stat(filepath.Join(dir, certName)); err != nil { // #nosec G703 -- inside the host's certs directory
				return nil, certsError(dir, fmt.Errorf("missing client certificate %s for key %s", certName, name))
			}
		}
	}
	return cfg, nil
}

// certsError is a broken certs directory: an operator's configuration fault.
func certsError(dir string, err error) error {
	return &classError{
		class: errdefs.ErrFailedPrecondition,
		err:   fmt.Errorf("certs directory %s: %w", dir, err),
	}
}

// goarm is the GOARM level this binary was built for ("7" by default).
func goarm() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOARM" && s.Value != "" && s.Value[0] >= '5' && s.Value[0] <= '7' {
				return s.Value[:1]
			}
		}
	}
	return "7"
}
