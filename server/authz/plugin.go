package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
)

// The plugin methods of both phases.
const (
	apiRequest  = "AuthZPlugin.AuthZReq"
	apiResponse = "AuthZPlugin.AuthZRes"
)

// Request is the object both phases send, with the field names and
// encodings of dockerd's pkg/authorization (plugins decode it with that
// package's types). Every field is omitted when empty.
type Request struct {
	// User is the common name of the client's verified TLS certificate.
	User string `json:"User,omitempty"`
	// UserAuthNMethod is "TLS" when User is set.
	UserAuthNMethod string `json:"UserAuthNMethod,omitempty"`
	RequestMethod   string `json:"RequestMethod,omitempty"`
	// RequestURI is the URI as the client sent it, with its /vX.Y prefix
	// and query.
	RequestURI string `json:"RequestUri,omitempty"`
	// RequestBody is a JSON request body ([]byte: base64 in JSON).
	RequestBody []byte `json:"RequestBody,omitempty"`
	// RequestHeaders hold the last value of each header, without
	// Authorization, X-Registry-Auth and X-Registry-Config.
	RequestHeaders map[string]string `json:"RequestHeaders,omitempty"`
	// RequestPeerCertificates are the client's certificates, each PEM
	// encoded and sent as a JSON []byte (base64), as dockerd's
	// PeerCertificate marshals.
	RequestPeerCertificates [][]byte `json:"RequestPeerCertificates,omitempty"`

	// Response phase only.
	ResponseStatusCode int               `json:"ResponseStatusCode,omitempty"`
	ResponseBody       []byte            `json:"ResponseBody,omitempty"`
	ResponseHeaders    map[string]string `json:"ResponseHeaders,omitempty"`
}

// Response is a plugin's answer. Only Allow and Msg decide; Err is read for
// messages only (dockerd ignores an Err beside Allow:true, and so does
// pluginsd).
type Response struct {
	Allow bool   `json:"Allow"`
	Msg   string `json:"Msg,omitempty"`
	Err   string `json:"Err,omitempty"`
}

func pemCertificate(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// errUnreachable marks a call that could not reach the plugin's process:
// it could not connect, or the connection broke before the reply. The
// process is gone (crashed, being restarted); the request gets 503.
var errUnreachable = errors.New("the plugin's process is not reachable")

// connectionLost reports whether err means the plugin's process was not
// there to answer (rather than answering badly or too slowly).
func connectionLost(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	if opErr, ok := errors.AsType[*net.OpError](err); ok && opErr.Op == "dial" {
		return true
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ENOENT, syscall.ECONNRESET, syscall.EPIPE, io.EOF, io.ErrUnexpectedEOF} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// maxReplySize bounds a plugin's reply.
const maxReplySize = 1 << 20

// callPlugin makes one plugin RPC as dockerd's plugin client does: POST
// /<method> to host plugin.moby.localhost over the plugin's unix socket,
// Accept: application/vnd.docker.plugins.v1.2+json, no Content-Type, the
// arguments as JSON followed by a newline (body, as encoded by
// json.Encoder, which escapes HTML as dockerd's client does). A reply other
// than 200 is an
// error carrying the reply's Err (or its body). ctx bounds the whole call.
//
// Connections are not kept alive: a restarted plugin listens on a new
// socket, and a kept connection to the old process would fail the next
// request.
func callPlugin(ctx context.Context, socket, method string, body []byte) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://plugin.moby.localhost/"+method, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if connectionLost(err) {
			return nil, fmt.Errorf("%s: %w: %w", method, errUnreachable, err)
		}
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReplySize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the reply: %w", method, err)
	}
	if len(b) > maxReplySize {
		return nil, fmt.Errorf("%s: reply larger than %d bytes", method, maxReplySize)
	}
	var out Response
	if resp.StatusCode != http.StatusOK {
		if json.Unmarshal(b, &out) == nil && out.Err != "" {
			return nil, fmt.Errorf("%s: %s", method, out.Err)
		}
		return nil, fmt.Errorf("%s: status %d: %s", method, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: invalid reply: %w", method, err)
	}
	return &out, nil
}
