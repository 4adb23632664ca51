package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/plugin"
	dto "github.com/prometheus/client_model/go"

	"github.com/pluginsd/pluginsd/manager"
)

type fakeSource struct {
	mu      sync.Mutex
	plugins []*manager.Plugin
	stats   manager.Stats
	err     error
}

func (f *fakeSource) List(ctx context.Context, req manager.ListRequest) ([]*manager.Plugin, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.plugins, f.err
}

func (f *fakeSource) Stats() manager.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func plugins(enabled ...bool) []*manager.Plugin {
	var out []*manager.Plugin
	for _, e := range enabled {
		out = append(out, &manager.Plugin{Plugin: plugin.Plugin{Enabled: e}})
	}
	return out
}

// gather returns the samples of the family name, keyed by their labels
// ("k=v,k=v"); histograms give their sample count.
func gather(t *testing.T, m *Metrics, name string) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		out := map[string]float64{}
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out[strings.Join(labels, ",")] = value(mf.GetType(), mt)
		}
		return out
	}
	return nil
}

func value(typ dto.MetricType, m *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return -1
}

func TestManagerMetricsAtScrape(t *testing.T) {
	src := &fakeSource{plugins: plugins(true, false, true), stats: manager.Stats{Restarts: 2, BytesPulled: 1000, BytesPushed: 30}}
	m := New(src, "1.2.3")
	if got := gather(t, m, "pluginsd_plugins"); got["state=enabled"] != 2 || got["state=disabled"] != 1 {
		t.Errorf("plugins = %v", got)
	}
	for name, want := range map[string]float64{
		"pluginsd_plugin_restarts_total": 2,
		"pluginsd_pulled_bytes_total":    1000,
		"pluginsd_pushed_bytes_total":    30,
	} {
		if got := gather(t, m, name)[""]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := gather(t, m, "pluginsd_build_info"); got["version=1.2.3"] != 1 {
		t.Errorf("build_info = %v", got)
	}
	// Read again at the next scrape, never cached.
	src.mu.Lock()
	src.plugins = plugins(false)
	src.stats.Restarts = 3
	src.mu.Unlock()
	if got := gather(t, m, "pluginsd_plugins"); got["state=enabled"] != 0 || got["state=disabled"] != 1 {
		t.Errorf("plugins after change = %v", got)
	}
	if got := gather(t, m, "pluginsd_plugin_restarts_total")[""]; got != 3 {
		t.Errorf("restarts after change = %v", got)
	}
}

func TestManagerMetricsListError(t *testing.T) {
	m := New(&fakeSource{err: errors.New("boom")}, "x")
	if _, err := m.Registry().Gather(); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Gather error = %v, want the List error", err)
	}
}

func TestObserveRequest(t *testing.T) {
	m := New(&fakeSource{}, "x")
	m.ObserveRequest("list", 200, 3*time.Millisecond)
	m.ObserveRequest("list", 200, 5*time.Millisecond)
	m.ObserveRequest("inspect", 404, time.Millisecond)
	m.ObserveRequest("events", 200, time.Hour)
	want := map[string]float64{"code=200,operation=list": 2, "code=404,operation=inspect": 1, "code=200,operation=events": 1}
	got := gather(t, m, "pluginsd_http_requests_total")
	for k, v := range want {
		if got[k] != v {
			t.Errorf("requests[%s] = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	lat := gather(t, m, "pluginsd_http_request_duration_seconds")
	if lat["operation=list"] != 2 || lat["operation=inspect"] != 1 {
		t.Errorf("latency counts = %v", lat)
	}
	if _, ok := lat["operation=events"]; ok {
		t.Error("event streams observed as latency")
	}
}

func TestHandler(t *testing.T) {
	m := New(&fakeSource{plugins: plugins(true)}, "x")
	m.ObserveRequest("list", 200, time.Millisecond)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`pluginsd_http_requests_total{code="200",operation="list"} 1`,
		`pluginsd_plugins{state="enabled"} 1`,
		`pluginsd_http_request_duration_seconds_bucket{operation="list",le="0.005"} 1`,
		`go_goroutines `,
		`process_open_fds `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get("/"); code != http.StatusNotFound {
		t.Errorf("/: %d, want 404", code)
	}
}
