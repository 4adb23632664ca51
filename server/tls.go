package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/sirupsen/logrus"
)

// TLSOptions are dockerd's TLS flags for tcp hosts.
type TLSOptions struct {
	// TLS serves TLS with Cert and Key (--tls).
	TLS bool
	// Verify also requires every client to present a certificate signed by
	// CACert (--tlsverify, which implies --tls). The verified
	// certificate's common name is the user AuthZ plugins see.
	Verify bool
	// CACert, Cert and Key are PEM files (--tlscacert, --tlscert,
	// --tlskey). With TLS but without Verify, a CACert verifies the client
	// certificates that are given, and clients without one are served too.
	CACert, Cert, Key string
}

// Config returns the server's TLS configuration, or nil when TLS is off.
// TLS files given without --tls or --tlsverify are an error rather than
// silently unused.
func (o TLSOptions) Config() (*tls.Config, error) {
	if !o.TLS && !o.Verify {
		if o.CACert != "" || o.Cert != "" || o.Key != "" {
			return nil, errors.New("--tlscacert, --tlscert and --tlskey need --tls or --tlsverify")
		}
		return nil, nil
	}
	if o.Cert == "" || o.Key == "" {
		return nil, errors.New("--tls and --tlsverify need --tlscert and --tlskey")
	}
	if o.Verify && o.CACert == "" {
		return nil, errors.New("--tlsverify needs --tlscacert (the CA of the client certificates)")
	}
	cert, err := tls.LoadX509KeyPair(o.Cert, o.Key)
	if err != nil {
		return nil, fmt.Errorf("--tlscert/--tlskey: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.NoClientCert,
	}
	if o.CACert != "" {
		pem, err := os.ReadFile(o.CACert)
		if err != nil {
			return nil, fmt.Errorf("--tlscacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tlscacert: no PEM certificate in %s", o.CACert)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if o.Verify {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
}

// listenTCP listens on addr, over TLS when o.TLS is set. Without TLS, only
// a loopback address is accepted unless o.InsecureTCP. The address is
// judged by what was actually bound, so names ("localhost") and wildcards
// ("", "0.0.0.0", "[::]") are judged correctly.
func listenTCP(ctx context.Context, host, addr string, o ListenOptions) (net.Listener, error) {
	if addr == "" {
		return nil, fmt.Errorf("invalid host %q: no address", host)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if o.TLS != nil {
		if o.TLS.ClientAuth != tls.RequireAndVerifyClientCert && !isLoopback(l.Addr()) {
			logrus.WithField("host", host).Warn("serving TCP with TLS but without --tlsverify: any client that reaches this address controls pluginsd")
		}
		return tls.NewListener(l, o.TLS), nil
	}
	if isLoopback(l.Addr()) {
		return l, nil
	}
	if !o.InsecureTCP {
		l.Close()
		return nil, fmt.Errorf("refusing to serve %s without TLS: whoever reaches the API is root on this host; "+
			"use --tlsverify with --tlscacert, --tlscert and --tlskey, listen on a loopback address, "+
			"or give --insecure-tcp to accept the risk", host)
	}
	logrus.WithField("host", host).Warn("serving plain TCP on a non-loopback address (--insecure-tcp): anyone who reaches it is root on this host")
	return l, nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
