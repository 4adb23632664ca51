package distribution

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestErrorClassFromRegistryResponse(t *testing.T) {
	f := newFakeRegistry(t)
	c := newTestClient(t, Options{})
	h := f.host()

	tests := []struct {
		name    string
		status  int
		body    string // errcode envelope, or "" for none
		is      func(error) bool
		wantMsg string
	}{
		{"401 no challenge", 401, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, errdefs.IsUnauthorized, "authentication required"},
		{"403 denied", 403, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`, errdefs.IsPermissionDenied, "requested access to the resource is denied"},
		{"404 plain", 404, "", errdefs.IsNotFound, h + "/x:1.0: not found"},
		{"400 NAME_UNKNOWN", 400, `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`, errdefs.IsNotFound, "repository name not known to registry"},
		{"400 MANIFEST_UNKNOWN", 400, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`, errdefs.IsNotFound, "manifest unknown"},
		{"400 MANIFEST_INVALID", 400, `{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}`, errdefs.IsInvalidArgument, "manifest invalid"},
		{"400 DIGEST_INVALID", 400, `{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}`, errdefs.IsDataLoss, "provided digest did not match"},
		{"429", 429, `{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}`, errdefs.IsUnavailable, "pull rate limit"},
		{"500", 500, "", errdefs.IsUnavailable, "500"},
		{"502", 502, "", errdefs.IsUnavailable, "Bad Gateway"},
		{"503 with body", 503, `{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}`, errdefs.IsUnavailable, "try later"},
		{"405", 405, "", errdefs.IsNotImplemented, "405"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				if tt.body != "" {
					w.Header().Set("Content-Type", "application/json")
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
				return true
			})
			defer f.setHook(nil)
			_, err := c.Resolve(t.Context(), target(t, h+"/x:1.0"))
			if err == nil || !tt.is(err) {
				t.Fatalf("err = %v (class %v), wrong class", err, errdefs.Resolve(err))
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestErrorClassFromNetwork(t *testing.T) {
	// a port nobody listens on
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newTestClient(t, Options{})
	_, err = c.Resolve(t.Context(), target(t, addr+"/x:1.0"))
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("refused: err = %v, want Unavailable with the cause", err)
	}

	// a server that accepts and never answers: the caller's deadline wins
	// and stays a deadline, not Unavailable
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = c.Resolve(ctx, target(t, strings.TrimPrefix(hang.URL, "http://")+"/x:1.0"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hang: err = %v, want DeadlineExceeded", err)
	}
}

// The retry policy retries 5xx and 429 before giving up.
func TestRetryOnUnavailable(t *testing.T) {
	f := newFakeRegistry(t)
	f.putPlugin("x", "1.0")
	calls := 0
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") && calls < 2 {
			calls++
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	c := newTestClient(t, Options{})
	c.retryPolicy = fastRetries
	if _, err := c.Resolve(t.Context(), target(t, f.host()+"/x:1.0")); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Errorf("calls = %d", calls)
	}
}

func TestClassifyKeepsExistingClass(t *testing.T) {
	for _, err := range []error{
		context.Canceled,
		fmt.Errorf("wrapped: %w", context.DeadlineExceeded),
		errdefs.ErrNotFound.WithMessage("x"),
		certsError("/d", errors.New("bad")),
	} {
		if got := classify(err); !errors.Is(got, err) || got.Error() != err.Error() {
			t.Errorf("classify(%v) = %v, want it unchanged", err, got)
		}
	}
	if !errors.Is(errdefs.Resolve(classify(errors.New("x"))), errdefs.ErrUnknown) {
		t.Error("unknown errors must stay unclassified")
	}
}
