package main

// The authz mode: an authorization plugin in the protocol of dockerd's
// pkg/authorization, written from the wire format (it imports nothing of
// pluginsd), so the integration tests check what a real plugin receives.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// authzRequest is the object both phases receive.
type authzRequest struct {
	User                    string
	UserAuthNMethod         string
	RequestMethod           string
	RequestURI              string `json:"RequestUri"`
	RequestBody             []byte
	RequestHeaders          map[string]string
	RequestPeerCertificates [][]byte
	ResponseStatusCode      int
	ResponseBody            []byte
	ResponseHeaders         map[string]string
}

// authzCall is one call as /Calls reports it.
type authzCall struct {
	Phase           string // AuthZReq or AuthZRes
	Time            int64  // UnixNano when it arrived (the chain's order across plugins)
	Method          string
	URI             string
	BodyLen         int
	Body            string // the first 200 bytes
	Status          int
	User            string
	UserAuthNMethod string
	PeerCerts       int
	Headers         map[string]string
	ResponseBodyLen int
	Allow           bool
	Accept          string
	ContentType     string
}

// authz serves AuthZPlugin.AuthZReq and AuthZRes: deny when the request
// URI contains $DENY_URI or the request body contains $DENY_BODY, deny the
// response when the URI contains $DENY_RES_URI, allow otherwise. POST
// /Calls returns every call received so far.
func authz(mux *http.ServeMux) {
	var mu sync.Mutex // guards calls
	var calls []authzCall
	denyURI, denyBody, denyRes := os.Getenv("DENY_URI"), os.Getenv("DENY_BODY"), os.Getenv("DENY_RES_URI")
	handle := func(phase string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			now := time.Now().UnixNano()
			var req authzRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				reply(w, map[string]string{"Err": "bad request: " + err.Error()})
				return
			}
			allow, msg := true, ""
			switch {
			case phase == "AuthZReq" && denyURI != "" && strings.Contains(req.RequestURI, denyURI):
				allow, msg = false, fmt.Sprintf("request URI contains %q", denyURI)
			case phase == "AuthZReq" && denyBody != "" && strings.Contains(string(req.RequestBody), denyBody):
				allow, msg = false, fmt.Sprintf("request body contains %q", denyBody)
			case phase == "AuthZRes" && denyRes != "" && strings.Contains(req.RequestURI, denyRes):
				allow, msg = false, fmt.Sprintf("response to a URI containing %q", denyRes)
			}
			body := string(req.RequestBody)
			if len(body) > 200 {
				body = body[:200]
			}
			mu.Lock()
			calls = append(calls, authzCall{
				Phase: phase, Time: now, Method: req.RequestMethod, URI: req.RequestURI,
				BodyLen: len(req.RequestBody), Body: body, Status: req.ResponseStatusCode,
				User: req.User, UserAuthNMethod: req.UserAuthNMethod, PeerCerts: len(req.RequestPeerCertificates),
				Headers: req.RequestHeaders, ResponseBodyLen: len(req.ResponseBody), Allow: allow,
				Accept: r.Header.Get("Accept"), ContentType: r.Header.Get("Content-Type"),
			})
			mu.Unlock()
			reply(w, map[string]any{"Allow": allow, "Msg": msg})
		}
	}
	mux.HandleFunc("/AuthZPlugin.AuthZReq", handle("AuthZReq"))
	mux.HandleFunc("/AuthZPlugin.AuthZRes", handle("AuthZRes"))
	mux.HandleFunc("/Calls", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		reply(w, calls)
	})
}
