package server

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"

	"github.com/pluginsd/pluginsd/handlers"
)

type observed struct {
	op   string
	code int
}

type fakeObserver struct {
	mu  sync.Mutex
	got []observed
}

func (o *fakeObserver) ObserveRequest(op string, code int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d < 0 {
		panic("negative duration")
	}
	o.got = append(o.got, observed{op, code})
}

// Every request is observed with its operation and the status sent,
// including those refused before or outside the routes.
func TestObserveRequests(t *testing.T) {
	for _, tc := range []struct {
		name, method, target string
		err                  error
		want                 observed
	}{
		{"list", http.MethodGet, "/v1.41/plugins", nil, observed{"list", 200}},
		{"unversioned", http.MethodGet, "/plugins", nil, observed{"list", 200}},
		{"ping head", http.MethodHead, "/_ping", nil, observed{"ping", 200}},
		{"inspect not found", http.MethodGet, "/v1.41/plugins/x/json", errdefs.ErrNotFound, observed{"inspect", 404}},
		{"enable conflict", http.MethodPost, "/plugins/localhost:5000/x:1.0/enable", errdefs.ErrConflict, observed{"enable", 409}},
		{"version too new", http.MethodGet, "/v1.99/plugins", nil, observed{"list", 400}},
		{"no route", http.MethodGet, "/v1.41/containers/json", nil, observed{"unknown", 404}},
		{"wrong method", http.MethodPut, "/plugins", nil, observed{"unknown", 404}},
		{"unclean path", http.MethodGet, "//plugins", nil, observed{"unknown", 301}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &fakeObserver{}
			b := &fakeBackend{err: tc.err}
			h := New(Config{Info: handlers.Info{Version: "0.0.0-test"}, Metrics: o}, b).Handler()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), tc.method, tc.target, nil))
			if rec.Code != tc.want.code {
				t.Errorf("status %d, want %d", rec.Code, tc.want.code)
			}
			if diff := cmp.Diff([]observed{tc.want}, o.got, cmp.AllowUnexported(observed{})); diff != "" {
				t.Errorf("observed (-want +got):\n%s", diff)
			}
		})
	}
}

// The error a handler returns is written once, with its usual body, when
// requests are observed.
func TestObserveRequestsErrorBody(t *testing.T) {
	h := New(Config{Info: handlers.Info{Version: "0.0.0-test"}, Metrics: &fakeObserver{}},
		&fakeBackend{err: errdefs.ErrNotFound.WithMessage("plugin \"x\" not found")}).Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v1.41/plugins/x/json", nil))
	checkJSONError(t, rec, http.StatusNotFound, `plugin "x" not found`)
	checkEngineHeaders(t, rec, true)
}
