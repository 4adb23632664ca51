package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/containerd/errdefs"
	"github.com/labstack/echo/v4"
	"github.com/sirupsen/logrus"

	"github.com/pluginsd/pluginsd/compat"
)

// pageNotFound is dockerd's answer for an unknown route or a known route with
// the wrong method (it has no 405).
const pageNotFound = "page not found"

// statusFromError is the one place an error becomes an HTTP status. Only
// errdefs classes are checked here (plus Echo's own router and body errors);
// packages below server/ classify their errors where they are born, so do
// not add new error types here.
func statusFromError(err error) (int, string) {
	if he, ok := errors.AsType[*echo.HTTPError](err); ok {
		switch he.Code {
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			return http.StatusNotFound, pageNotFound
		}
		msg := http.StatusText(he.Code)
		if s, ok := he.Message.(string); ok {
			msg = s
		}
		return he.Code, msg
	}
	class := errdefs.Resolve(err)
	for _, cs := range classStatus {
		if errors.Is(class, cs.class) {
			return cs.status, err.Error()
		}
	}
	return http.StatusInternalServerError, err.Error()
}

// classStatus maps errdefs classes to statuses, as dockerd's httpstatus does
// for the classes it knows.
var classStatus = []struct {
	class  error
	status int
}{
	{errdefs.ErrInvalidArgument, http.StatusBadRequest},
	{errdefs.ErrOutOfRange, http.StatusBadRequest},
	{errdefs.ErrNotFound, http.StatusNotFound},
	{errdefs.ErrConflict, http.StatusConflict},
	{errdefs.ErrAlreadyExists, http.StatusConflict},
	{errdefs.ErrFailedPrecondition, http.StatusConflict},
	{errdefs.ErrUnauthenticated, http.StatusUnauthorized},
	{errdefs.ErrPermissionDenied, http.StatusForbidden},
	// Ours: request bodies and blobs above their limits.
	{errdefs.ErrResourceExhausted, http.StatusRequestEntityTooLarge},
	{errdefs.ErrUnavailable, http.StatusServiceUnavailable},
	{errdefs.ErrNotImplemented, http.StatusNotImplemented},
	{errdefs.ErrNotModified, http.StatusNotModified},
	// Content that did not match its digest came from a registry or a
	// client, not from us.
	{errdefs.ErrDataLoss, http.StatusBadGateway},
	{context.Canceled, http.StatusServiceUnavailable},
	{context.DeadlineExceeded, http.StatusServiceUnavailable},
}

// errorHandler writes err as dockerd does: {"message":...} with
// Content-Type application/json exactly (clients parse nothing else), or
// plain text for API versions below 1.24. A response already committed (a
// progress stream) reports its error in-stream; here it is only logged.
func errorHandler(err error, c echo.Context) {
	req := c.Request()
	status, msg := statusFromError(err)
	log := logrus.WithFields(logrus.Fields{"method": req.Method, "path": req.URL.Path, "status": status})
	if status >= 500 {
		log.WithError(err).Error("request failed")
	} else {
		log.WithError(err).Debug("request refused")
	}
	if c.Response().Committed {
		return
	}
	h := c.Response().Header()
	h.Del("Allow")
	if status == http.StatusNotFound && msg == pageNotFound {
		// Outside dockerd's middleware: no version headers.
		for _, k := range []string{"Api-Version", "Server", "Ostype", "Docker-Experimental"} {
			h.Del(k)
		}
	}
	// HEAD gets the same headers as GET; net/http drops the body.
	if compat.PlainTextErrors(compat.VersionFromContext(req.Context())) {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		c.Response().WriteHeader(status)
		_, _ = c.Response().Write([]byte(msg + "\n"))
		return
	}
	body, encErr := compat.EncodeJSON(map[string]string{"message": msg})
	if encErr != nil {
		body = []byte(`{"message":"internal error"}` + "\n")
	}
	h.Set("Content-Type", "application/json")
	c.Response().WriteHeader(status)
	_, _ = c.Response().Write(body)
}
