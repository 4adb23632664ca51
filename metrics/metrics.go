// Package metrics exposes pluginsd's Prometheus metrics: API requests by
// operation and status with their latency, and the manager's state read at
// scrape time (plugins by state, crash restarts, registry bytes). It is
// served on its own listener (--metrics-addr), never on the API socket.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pluginsd/pluginsd/manager"
)

const namespace = "pluginsd"

// Source is what the metrics read from the manager at scrape time.
type Source interface {
	List(ctx context.Context, req manager.ListRequest) ([]*manager.Plugin, error)
	Stats() manager.Stats
}

// Metrics is pluginsd's registry. ObserveRequest is safe for concurrent
// use.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// latencyBuckets reach minutes: pulls and pushes of large plugins are
// requests too.
var latencyBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// New registers every metric, reading the manager's through src, plus the
// Go runtime and process collectors.
func New(src Source, version string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "API requests by operation (list, inspect, pull... or unknown) and HTTP status code.",
		}, []string{"operation", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "API request latency by operation, to the end of the response (event streams are not observed).",
			Buckets: latencyBuckets,
		}, []string{"operation"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info", Help: "Always 1, labelled with pluginsd's version.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	m.reg.MustRegister(
		m.requests, m.latency, build, newManagerCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// ObserveRequest records one finished API request. op must come from a
// small fixed set (handlers.Operation): it is a label.
func (m *Metrics) ObserveRequest(op string, code int, d time.Duration) {
	m.requests.WithLabelValues(op, strconv.Itoa(code)).Inc()
	if op != "events" { // lasts as long as the client listens: not a latency
		m.latency.WithLabelValues(op).Observe(d.Seconds())
	}
}

// Handler serves /metrics in the Prometheus exposition formats; other
// paths are 404.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	return mux
}

// Registry is the registry the metrics are in (for tests).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// managerCollector reads the manager when scraped, so its values are
// never stale and nothing has to keep them up to date.
type managerCollector struct {
	src         Source
	plugins     *prometheus.Desc
	restarts    *prometheus.Desc
	pulledBytes *prometheus.Desc
	pushedBytes *prometheus.Desc
}

func newManagerCollector(src Source) *managerCollector {
	return &managerCollector{
		src: src,
		plugins: prometheus.NewDesc(namespace+"_plugins", "Installed plugins by state (enabled or disabled).",
			[]string{"state"}, nil),
		restarts: prometheus.NewDesc(namespace+"_plugin_restarts_total",
			"Enabled plugins started again after they died.", nil, nil),
		pulledBytes: prometheus.NewDesc(namespace+"_pulled_bytes_total",
			"Layer bytes downloaded from registries by pulls and upgrades.", nil, nil),
		pushedBytes: prometheus.NewDesc(namespace+"_pushed_bytes_total",
			"Blob bytes uploaded to registries by pushes.", nil, nil),
	}
}

func (c *managerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.plugins
	ch <- c.restarts
	ch <- c.pulledBytes
	ch <- c.pushedBytes
}

func (c *managerCollector) Collect(ch chan<- prometheus.Metric) {
	// List reads the store's current snapshot: it does not block.
	if ps, err := c.src.List(context.Background(), manager.ListRequest{}); err == nil {
		var enabled, disabled int
		for _, p := range ps {
			if p.Plugin.Enabled {
				enabled++
			} else {
				disabled++
			}
		}
		ch <- prometheus.MustNewConstMetric(c.plugins, prometheus.GaugeValue, float64(enabled), "enabled")
		ch <- prometheus.MustNewConstMetric(c.plugins, prometheus.GaugeValue, float64(disabled), "disabled")
	} else {
		ch <- prometheus.NewInvalidMetric(c.plugins, err)
	}
	s := c.src.Stats()
	ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(s.Restarts))
	ch <- prometheus.MustNewConstMetric(c.pulledBytes, prometheus.CounterValue, float64(s.BytesPulled))
	ch <- prometheus.MustNewConstMetric(c.pushedBytes, prometheus.CounterValue, float64(s.BytesPushed))
}
