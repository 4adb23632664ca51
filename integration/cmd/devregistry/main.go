// Command devregistry serves a real distribution v3 registry (filesystem
// storage in a directory, no auth) on a local address, for `make demo`, the
// conformance scenarios, benchmarks and manual trials. It is a development
// tool: it lives in the integration module and is never linked into
// bin/pluginsd.
//
//	devregistry [-addr 127.0.0.1:5000] [-root DIR]
//
// Without -root, storage is a temporary directory removed at exit.
// (distribution's in-memory driver copies a blob on every write, which
// makes large pushes quadratic.)
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/sirupsen/logrus"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devregistry:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:5000", "`host:port` to listen on")
	root := flag.String("root", "", "storage `dir` (default: a temporary one, removed at exit)")
	flag.Parse()
	if *root == "" {
		dir, err := os.MkdirTemp("", "devregistry-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		*root = dir
	}
	logrus.SetLevel(logrus.FatalLevel)
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	cfg := &configuration.Configuration{}
	cfg.HTTP.Secret = hex.EncodeToString(secret)
	cfg.Storage = configuration.Storage{
		"filesystem":  configuration.Parameters{"rootdirectory": *root},
		"delete":      configuration.Parameters{"enabled": true},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	app := handlers.NewApp(ctx, cfg)
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	fmt.Printf("registry listening on %s\n", l.Addr())
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return app.Shutdown()
}
