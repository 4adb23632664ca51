package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pluginsd/pluginsd/manager"
)

func TestMetricsAddrOption(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.json")
	if err := os.WriteFile(empty, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, _, err := parseOptions([]string{"--config-file", empty})
	if err != nil || o.MetricsAddr != "" {
		t.Errorf("default: %q, %v; want off", o.MetricsAddr, err)
	}
	o, _, err = parseOptions([]string{"--config-file", empty, "--metrics-addr", "127.0.0.1:9323"})
	if err != nil || o.MetricsAddr != "127.0.0.1:9323" {
		t.Errorf("flag: %q, %v", o.MetricsAddr, err)
	}
	file := filepath.Join(t.TempDir(), "pluginsd.json")
	if err := os.WriteFile(file, []byte(`{"metrics-addr": "[::1]:9323"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	o, _, err = parseOptions([]string{"--config-file", file})
	if err != nil || o.MetricsAddr != "[::1]:9323" {
		t.Errorf("config file: %q, %v", o.MetricsAddr, err)
	}
	if _, _, err := parseOptions([]string{"--config-file", file, "--metrics-addr", ":1"}); err == nil || !strings.Contains(err.Error(), "metrics-addr") {
		t.Errorf("flag and file: %v", err)
	}
}

// stats is a metrics.Source with no plugins.
type stats struct{}

func (stats) List(context.Context, manager.ListRequest) ([]*manager.Plugin, error) { return nil, nil }
func (stats) Stats() manager.Stats                                                 { return manager.Stats{} }

func TestMetricsServer(t *testing.T) {
	ms, err := listenMetrics(t.Context(), "")
	if err != nil || ms != nil {
		t.Fatalf("off: %v, %v", ms, err)
	}
	if ms.start(stats{}) != nil {
		t.Error("a nil server gives an observer")
	}
	ms.close(t.Context()) // no-op

	if _, err := listenMetrics(t.Context(), "nonsense"); err == nil {
		t.Error("bad address accepted")
	}
	ms, err = listenMetrics(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	obs := ms.start(stats{})
	obs.ObserveRequest("list", 200, time.Millisecond)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+ms.l.Addr().String()+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `pluginsd_http_requests_total{code="200",operation="list"} 1`) {
		t.Errorf("/metrics:\n%s", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms.close(ctx) // returns once serving stopped
	if resp, err := http.DefaultClient.Do(req.Clone(t.Context())); err == nil {
		resp.Body.Close()
		t.Error("still serving after close")
	}
}
