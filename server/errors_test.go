package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/labstack/echo/v4"
)

// mobyNotFound classifies itself the way moby's errdefs do, by method.
type mobyNotFound struct{}

func (mobyNotFound) Error() string { return "moby-style not found" }
func (mobyNotFound) NotFound()     {}

func TestStatusFromError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantMsg    string
	}{
		{name: "not found", err: errdefs.ErrNotFound.WithMessage(`plugin "x" not found`), wantStatus: http.StatusNotFound, wantMsg: `plugin "x" not found`},
		{name: "invalid argument", err: errdefs.ErrInvalidArgument.WithMessage("bad"), wantStatus: http.StatusBadRequest, wantMsg: "bad"},
		{name: "out of range", err: errdefs.ErrOutOfRange.WithMessage("range"), wantStatus: http.StatusBadRequest, wantMsg: "range"},
		{name: "conflict", err: errdefs.ErrConflict.WithMessage("plugin x:latest already exists"), wantStatus: http.StatusConflict, wantMsg: "plugin x:latest already exists"},
		{name: "already exists", err: errdefs.ErrAlreadyExists.WithMessage("exists"), wantStatus: http.StatusConflict, wantMsg: "exists"},
		{name: "failed precondition", err: errdefs.ErrFailedPrecondition.WithMessage("pre"), wantStatus: http.StatusConflict, wantMsg: "pre"},
		{name: "unauthenticated", err: errdefs.ErrUnauthenticated.WithMessage("who"), wantStatus: http.StatusUnauthorized, wantMsg: "who"},
		{name: "permission denied", err: errdefs.ErrPermissionDenied.WithMessage("no"), wantStatus: http.StatusForbidden, wantMsg: "no"},
		{name: "resource exhausted", err: errdefs.ErrResourceExhausted.WithMessage("big"), wantStatus: http.StatusRequestEntityTooLarge, wantMsg: "big"},
		{name: "unavailable", err: errdefs.ErrUnavailable.WithMessage("later"), wantStatus: http.StatusServiceUnavailable, wantMsg: "later"},
		{name: "not implemented", err: errdefs.ErrNotImplemented.WithMessage("nope"), wantStatus: http.StatusNotImplemented, wantMsg: "nope"},
		{name: "not modified", err: errdefs.ErrNotModified.WithMessage("same"), wantStatus: http.StatusNotModified, wantMsg: "same"},
		{name: "data loss", err: errdefs.ErrDataLoss.WithMessage("digest mismatch"), wantStatus: http.StatusBadGateway, wantMsg: "digest mismatch"},
		{name: "bare class", err: errdefs.ErrNotFound, wantStatus: http.StatusNotFound, wantMsg: "not found"},
		{name: "canceled", err: context.Canceled, wantStatus: http.StatusServiceUnavailable, wantMsg: "context canceled"},
		{name: "deadline", err: context.DeadlineExceeded, wantStatus: http.StatusServiceUnavailable, wantMsg: "context deadline exceeded"},
		{name: "plain error", err: errors.New("boom"), wantStatus: http.StatusInternalServerError, wantMsg: "boom"},
		{name: "unknown class", err: errdefs.ErrUnknown.WithMessage("?"), wantStatus: http.StatusInternalServerError, wantMsg: "?"},
		{name: "internal", err: errdefs.ErrInternal.WithMessage("bug"), wantStatus: http.StatusInternalServerError, wantMsg: "bug"},
		{name: "aborted", err: errdefs.ErrAborted.WithMessage("abort"), wantStatus: http.StatusInternalServerError, wantMsg: "abort"},

		{name: "wrapped keeps its class", err: fmt.Errorf("create: %w", errdefs.ErrConflict.WithMessage("taken")),
			wantStatus: http.StatusConflict, wantMsg: "create: taken"},
		{name: "wrapped twice", err: fmt.Errorf("a: %w", fmt.Errorf("b: %w", errdefs.ErrInvalidArgument.WithMessage("c"))),
			wantStatus: http.StatusBadRequest, wantMsg: "a: b: c"},
		{name: "wrapped plain error", err: fmt.Errorf("a: %w", errors.New("b")), wantStatus: http.StatusInternalServerError, wantMsg: "a: b"},
		{name: "joined, first classified wins", err: errors.Join(errors.New("plain"), errdefs.ErrNotFound.WithMessage("nf")),
			wantStatus: http.StatusNotFound, wantMsg: "plain\nnf"},
		{name: "moby-style interface", err: mobyNotFound{}, wantStatus: http.StatusNotFound, wantMsg: "moby-style not found"},

		{name: "echo not found", err: echo.ErrNotFound, wantStatus: http.StatusNotFound, wantMsg: "page not found"},
		{name: "echo method not allowed", err: echo.ErrMethodNotAllowed, wantStatus: http.StatusNotFound, wantMsg: "page not found"},
		{name: "wrapped echo not found", err: fmt.Errorf("x: %w", echo.ErrNotFound), wantStatus: http.StatusNotFound, wantMsg: "page not found"},
		{name: "echo error with message", err: echo.NewHTTPError(http.StatusRequestEntityTooLarge, "too big"),
			wantStatus: http.StatusRequestEntityTooLarge, wantMsg: "too big"},
		{name: "echo error without message", err: echo.NewHTTPError(http.StatusBadRequest),
			wantStatus: http.StatusBadRequest, wantMsg: "Bad Request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, msg := statusFromError(tt.err)
			if status != tt.wantStatus || msg != tt.wantMsg {
				t.Errorf("statusFromError(%v) = (%d, %q), want (%d, %q)", tt.err, status, msg, tt.wantStatus, tt.wantMsg)
			}
		})
	}
}
