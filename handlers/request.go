package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/labstack/echo/v4"
)

// maxJSONBody bounds JSON request bodies (set arguments, accepted
// privileges); real ones are a few hundred bytes.
const maxJSONBody = 1 << 20

// errBodyTooLarge is a 413.
func errBodyTooLarge(limit int64) error {
	return errdefs.ErrResourceExhausted.WithMessage(fmt.Sprintf("request body too large: more than %d bytes", limit))
}

// readJSON decodes a JSON request body into v with the rules of dockerd v28
// (httputils.ReadJSON): an empty body means "no value" (ok is false); a
// non-empty body needs Content-Type application/json; the body must hold
// exactly one JSON value.
func readJSON(c echo.Context, v any) (ok bool, err error) {
	r := c.Request()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return false, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("error reading request body: %v", err))
	}
	if len(body) > maxJSONBody {
		return false, errBodyTooLarge(maxJSONBody)
	}
	if len(body) == 0 {
		return false, nil
	}
	if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
		return false, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, errdefs.ErrInvalidArgument.WithMessage("invalid JSON: got EOF while reading request body")
		}
		return false, errdefs.ErrInvalidArgument.WithMessage("invalid JSON: " + err.Error())
	}
	// More() misses a stray closing bracket; only EOF may follow the value.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return false, errdefs.ErrInvalidArgument.WithMessage("unexpected content after JSON")
	}
	return true, nil
}

func checkJSONContentType(ct string) error {
	if ct == "" {
		return errdefs.ErrInvalidArgument.WithMessage("unsupported Content-Type header (): must be 'application/json'")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("malformed Content-Type header (%s): %v", ct, err))
	}
	if mt != "application/json" {
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("unsupported Content-Type header (%s): must be 'application/json'", ct))
	}
	return nil
}

// boolValue parses a boolean query parameter as dockerd does: after trimming
// and lowercasing, "", "0", "no", "false" and "none" are false and anything
// else is true (clients send force=1).
func boolValue(r *http.Request, key string) bool {
	switch strings.ToLower(strings.TrimSpace(r.URL.Query().Get(key))) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}
