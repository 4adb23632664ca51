package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/pluginsd/pluginsd/metrics"
	"github.com/pluginsd/pluginsd/server"
)

// metricsServer serves /metrics on its own listener (--metrics-addr), apart
// from the API: scrapers need no access to the Engine API socket. A nil
// *metricsServer is metrics turned off; every method accepts it.
type metricsServer struct {
	l    net.Listener
	m    *metrics.Metrics
	http *http.Server
	wg   sync.WaitGroup // the serving goroutine
}

// listenMetrics opens --metrics-addr (host:port); it returns nil when addr
// is empty. The listener is opened early so that a bad address fails the
// start before anything else happens.
func listenMetrics(ctx context.Context, addr string) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	return &metricsServer{l: l}, nil
}

// start builds the metrics over src (the manager), serves them until close,
// and returns what the API server reports its requests to (nil when off).
func (s *metricsServer) start(src metrics.Source) server.RequestObserver {
	if s == nil {
		return nil
	}
	s.m = metrics.New(src, version)
	s.http = &http.Server{Handler: s.m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	logrus.WithField("addr", s.l.Addr().String()).Info("metrics listening")
	s.wg.Go(func() {
		if err := s.http.Serve(s.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logrus.WithError(err).Error("metrics listener failed")
		}
	})
	return s.m
}

// close stops serving and waits for it; before start, it closes the
// listener.
func (s *metricsServer) close(ctx context.Context) {
	if s == nil {
		return
	}
	if s.http == nil {
		s.l.Close()
		return
	}
	if err := s.http.Shutdown(ctx); err != nil {
		logrus.WithError(err).Warn("metrics shutdown")
		_ = s.http.Close()
	}
	s.wg.Wait()
}
