package distribution

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// classError gives err an errdefs class without changing its message.
// errdefs.Resolve finds the class first; errors.Is/As still reach err.
type classError struct {
	class error
	err   error
}

func (e *classError) Error() string   { return e.err.Error() }
func (e *classError) Unwrap() []error { return []error{e.class, e.err} }

func withClass(class, err error) error {
	if class == nil {
		return err
	}
	return &classError{class: class, err: err}
}

// classed returns an error of the given class with a formatted message.
func classed(class error, format string, args ...any) error {
	return &classError{class: class, err: fmt.Errorf(format, args...)}
}

// classify gives an error from oras or net/http its errdefs class. Errors
// that already carry a class (including context cancellation) are returned
// unchanged; unrecognised errors stay unclassified.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if !errors.Is(errdefs.Resolve(err), errdefs.ErrUnknown) {
		return err
	}
	if resp, ok := errors.AsType[*errcode.ErrorResponse](err); ok {
		return withClass(classFromResponse(resp), err)
	}
	switch {
	case errors.Is(err, errdef.ErrNotFound):
		return withClass(errdefs.ErrNotFound, err)
	case errors.Is(err, errdef.ErrSizeExceedsLimit):
		return withClass(errdefs.ErrResourceExhausted, err)
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		// The registry asked for basic auth and the client sent no
		// credentials: say it as a registry would, not as the library does.
		return errdefs.ErrUnauthenticated.WithMessage("authentication required: no credentials for this registry (X-Registry-Auth); log in first")
	case strings.Contains(err.Error(), "missing username or password"):
		return withClass(errdefs.ErrUnauthenticated, err)
	case strings.Contains(err.Error(), "mismatch Content-Length"),
		strings.Contains(err.Error(), "digest mismatch in Docker-Content-Digest"):
		// oras's checks of the registry's Content-Length and
		// Docker-Content-Digest against what was asked for
		return withClass(errdefs.ErrDataLoss, err)
	case isNetworkError(err):
		return withClass(errdefs.ErrUnavailable, err)
	}
	return err
}

// classFromResponse maps a registry error response: the status first, then
// the errcode body for the statuses that say little on their own.
func classFromResponse(resp *errcode.ErrorResponse) error {
	switch s := resp.StatusCode; {
	case s == http.StatusUnauthorized:
		return errdefs.ErrUnauthenticated
	case s == http.StatusForbidden:
		return errdefs.ErrPermissionDenied
	case s == http.StatusNotFound:
		return errdefs.ErrNotFound
	case s == http.StatusTooManyRequests, s == http.StatusRequestTimeout, s >= 500:
		return errdefs.ErrUnavailable
	}
	for _, e := range resp.Errors {
		switch e.Code {
		case errcode.ErrorCodeManifestUnknown, errcode.ErrorCodeNameUnknown,
			errcode.ErrorCodeBlobUnknown, errcode.ErrorCodeBlobUploadUnknown:
			return errdefs.ErrNotFound
		case errcode.ErrorCodeUnauthorized:
			return errdefs.ErrUnauthenticated
		case errcode.ErrorCodeDenied:
			return errdefs.ErrPermissionDenied
		case "TOOMANYREQUESTS":
			return errdefs.ErrUnavailable
		case errcode.ErrorCodeDigestInvalid, errcode.ErrorCodeSizeInvalid:
			return errdefs.ErrDataLoss
		case errcode.ErrorCodeManifestBlobUnknown:
			return errdefs.ErrFailedPrecondition
		case errcode.ErrorCodeManifestInvalid, errcode.ErrorCodeNameInvalid,
			errcode.ErrorCodeBlobUploadInvalid, "TAG_INVALID", "MANIFEST_UNVERIFIED":
			return errdefs.ErrInvalidArgument
		case errcode.ErrorCodeUnsupported:
			return errdefs.ErrNotImplemented
		}
	}
	switch resp.StatusCode {
	case http.StatusBadRequest:
		return errdefs.ErrInvalidArgument
	case http.StatusMethodNotAllowed:
		return errdefs.ErrNotImplemented
	case http.StatusRequestEntityTooLarge:
		return errdefs.ErrResourceExhausted
	}
	return nil
}

// isNetworkError reports failures to reach or talk to a server: refused or
// reset connections, DNS failures, timeouts, TLS failures, truncated
// responses.
func isNetworkError(err error) bool {
	var (
		netErr  net.Error
		urlErr  *url.Error
		opErr   *net.OpError
		recErr  tls.RecordHeaderError
		certErr *tls.CertificateVerificationError
		uaErr   x509.UnknownAuthorityError
		hostErr x509.HostnameError
	)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, http.ErrSchemeMismatch):
		return true
	case errors.As(err, &netErr), errors.As(err, &urlErr), errors.As(err, &opErr),
		errors.As(err, &recErr), errors.As(err, &certErr), errors.As(err, &uaErr),
		errors.As(err, &hostErr):
		return true
	}
	return false
}

// speaksPlainHTTP reports whether an HTTPS attempt failed because the server
// answered in plain HTTP (or never completed the TLS handshake), the signal
// for an insecure registry to be retried over HTTP.
func speaksPlainHTTP(err error) bool {
	var recErr tls.RecordHeaderError
	switch {
	case errors.Is(err, http.ErrSchemeMismatch):
		return true
	case errors.As(err, &recErr) && string(recErr.RecordHeader[:]) == "HTTP/":
		return true
	case strings.Contains(err.Error(), "TLS handshake timeout"):
		return true
	}
	return false
}

// oauthPostRefused reports whether a token service answered the OAuth2 POST
// grant with 404 or 405: it only knows the GET flow of the token
// specification (containerd falls back the same way).
func oauthPostRefused(err error) bool {
	resp, ok := errors.AsType[*errcode.ErrorResponse](err)
	if !ok || resp.Method != http.MethodPost || resp.URL == nil {
		return false
	}
	if strings.HasPrefix(resp.URL.Path, "/v2/") {
		return false // the registry itself, e.g. an upload POST
	}
	return resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed
}
