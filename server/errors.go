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
	msg := err.Error()
	switch errdefs.Resolve(err) {
	case errdefs.ErrInvalidArgument, errdefs.ErrOutOfRange:
		return http.StatusBadRequest, msg
	case errdefs.ErrNotFound:
		return http.StatusNotFound, msg
	case errdefs.ErrConflict, errdefs.ErrAlreadyExists, errdefs.ErrFailedPrecondition:
		return http.StatusConflict, msg
	case errdefs.ErrUnauthenticated:
		return http.StatusUnauthorized, msg
	case errdefs.ErrPermissionDenied:
		return http.StatusForbidden, msg
	case errdefs.ErrResourceExhausted:
		return http.StatusRequestEntityTooLarge, msg
	case errdefs.ErrUnavailable:
		return http.StatusServiceUnavailable, msg
	case errdefs.ErrNotImplemented:
		return http.StatusNotImplemented, msg
	case errdefs.ErrNotModified:
		return http.StatusNotModified, msg
	case errdefs.ErrDataLoss:
		// Content that did not match its digest came from a registry or a
		// client, not from us.
		return http.StatusBadGateway, msg
	case context.Canceled, context.DeadlineExceeded:
		return http.StatusServiceUnavailable, msg
	default:
		return http.StatusInternalServerError, msg
	}
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
	if req.Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
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
