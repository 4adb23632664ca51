package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The token service's identity, as the registry is configured to trust it.
const (
	tokenService = "registrytest"
	tokenIssuer  = "registrytest-issuer"
	tokenKeyID   = "registrytest-key"
	tokenTTL     = 5 * time.Minute
)

// TokenRequest is one request the token service answered.
type TokenRequest struct {
	Method    string   // GET (token spec) or POST (OAuth2)
	GrantType string   // "password" or "refresh_token" for POST; "" for GET
	User      string   // the user authenticated or claimed; "" if anonymous
	ClientID  string   // OAuth2 client_id (POST) or client_id query (GET)
	Service   string   // service parameter
	Scopes    []string // each requested scope, as sent
	Status    int      // HTTP status of the answer
	Granted   []string // repository:<name>:<actions> granted, sorted
	Error     string   // why the request was refused, when it was
}

// tokenServer issues ES256 JWTs the registry verifies through a JWKS file.
// It is a plugin-aware token service: every repository scope must come with
// its repository(plugin) twin (dockerd asks for both, spec §8.2, B15), and a
// request that lacks it is refused with 403.
type tokenServer struct {
	srv      *httptest.Server
	key      *ecdsa.PrivateKey
	signer   jose.Signer
	jwksFile string
	anonPull bool

	mu       sync.Mutex
	users    map[string]string // guarded by mu
	refresh  map[string]string // refresh token -> user
	requests []TokenRequest
}

func newTokenServer(t testing.TB, users map[string]string, anonPull, useTLS bool) *tokenServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: tokenKeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &key.PublicKey, KeyID: tokenKeyID, Algorithm: string(jose.ES256), Use: "sig",
	}}})
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	ts := &tokenServer{
		key:      key,
		signer:   signer,
		jwksFile: filepath.Join(t.TempDir(), "jwks.json"),
		anonPull: anonPull,
		users:    users,
		refresh:  map[string]string{},
	}
	if err := os.WriteFile(ts.jwksFile, jwks, 0o600); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	ts.srv = httptest.NewUnstartedServer(http.HandlerFunc(ts.serve))
	if useTLS {
		ts.srv.StartTLS()
	} else {
		ts.srv.Start()
	}
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *tokenServer) realm() string { return ts.srv.URL + "/token" }

// requestsExcept returns a function listing the requests not made by user.
func (ts *tokenServer) requestsExcept(user string) func() []TokenRequest {
	return func() []TokenRequest {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		var out []TokenRequest
		for _, r := range ts.requests {
			if r.User != user {
				out = append(out, r)
			}
		}
		return out
	}
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/token" {
		http.NotFound(w, r)
		return
	}
	req := TokenRequest{Method: r.Method}
	refreshFor := "" // user to issue a refresh token for (access_type=offline)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		req.Service, req.ClientID = q.Get("service"), q.Get("client_id")
		for _, s := range q["scope"] {
			req.Scopes = append(req.Scopes, strings.Fields(s)...)
		}
		if u, p, ok := r.BasicAuth(); ok {
			req.User = u
			if pw, ok := ts.users[u]; !ok || pw != p {
				ts.refuse(w, &req, http.StatusUnauthorized, "invalid username or password")
				return
			}
		}
		if q.Get("offline_token") == "true" && req.User != "" {
			refreshFor = req.User
		}
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			ts.refuse(w, &req, http.StatusBadRequest, err.Error())
			return
		}
		f := r.PostForm
		req.GrantType, req.Service, req.ClientID = f.Get("grant_type"), f.Get("service"), f.Get("client_id")
		req.Scopes = strings.Fields(f.Get("scope"))
		if req.ClientID == "" {
			ts.refuse(w, &req, http.StatusBadRequest, "client_id is required")
			return
		}
		switch req.GrantType {
		case "password":
			req.User = f.Get("username")
			if pw, ok := ts.users[req.User]; !ok || pw != f.Get("password") {
				ts.refuse(w, &req, http.StatusUnauthorized, "invalid username or password")
				return
			}
			if f.Get("access_type") == "offline" {
				refreshFor = req.User
			}
		case "refresh_token":
			user, ok := ts.refresh[f.Get("refresh_token")]
			if !ok {
				ts.refuse(w, &req, http.StatusUnauthorized, "invalid refresh token")
				return
			}
			req.User = user
		default:
			ts.refuse(w, &req, http.StatusBadRequest, fmt.Sprintf("unsupported grant_type %q", req.GrantType))
			return
		}
	default:
		ts.refuse(w, &req, http.StatusMethodNotAllowed, "GET or POST")
		return
	}
	if req.Service != tokenService {
		ts.refuse(w, &req, http.StatusBadRequest, fmt.Sprintf("unknown service %q", req.Service))
		return
	}
	access, err := ts.grant(req.User, req.Scopes)
	if err != nil {
		ts.refuse(w, &req, http.StatusForbidden, err.Error())
		return
	}
	tok, err := ts.sign(req.User, access)
	if err != nil {
		ts.refuse(w, &req, http.StatusInternalServerError, err.Error())
		return
	}
	for _, a := range access {
		req.Granted = append(req.Granted, "repository:"+a.Name+":"+strings.Join(a.Actions, ","))
	}
	slices.Sort(req.Granted)
	req.Status = http.StatusOK
	ts.requests = append(ts.requests, req)
	resp := map[string]any{
		"token":        tok,
		"access_token": tok,
		"expires_in":   int(tokenTTL.Seconds()),
		"issued_at":    time.Now().UTC().Format(time.RFC3339),
	}
	if refreshFor != "" {
		resp["refresh_token"] = ts.newRefreshToken(refreshFor)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp) // a client gone away is its own problem
}

// refuse records req as refused and answers with a registry-style error.
// Called with ts.mu held.
func (ts *tokenServer) refuse(w http.ResponseWriter, req *TokenRequest, status int, msg string) {
	req.Status, req.Error = status, msg
	ts.requests = append(ts.requests, *req)
	code := "DENIED"
	if status == http.StatusUnauthorized {
		code = "UNAUTHORIZED"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// grant decides what a token for user carries. Users may pull and push
// everything; anonymous requests may pull when anonPull is set. A plain
// repository scope without a repository(plugin) scope for the same name and
// actions is an error. Called with ts.mu held.
func (ts *tokenServer) grant(user string, scopes []string) ([]*token.ResourceActions, error) {
	type key struct{ class, name string }
	requested := map[key][]string{}
	var names []string
	for _, s := range scopes {
		typ, rest, ok := strings.Cut(s, ":")
		i := strings.LastIndex(rest, ":")
		if !ok || i < 0 {
			return nil, fmt.Errorf("malformed scope %q", s)
		}
		name, actions := rest[:i], strings.Split(rest[i+1:], ",")
		var class string
		switch typ {
		case "repository":
		case "repository(plugin)":
			class = "plugin"
		default:
			continue // registry:catalog:* and the like: never granted
		}
		k := key{class, name}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
		requested[k] = append(requested[k], actions...)
	}
	var access []*token.ResourceActions
	for _, name := range names {
		plain, plugin := requested[key{"", name}], requested[key{"plugin", name}]
		for _, a := range plain {
			if !slices.Contains(plugin, a) {
				return nil, fmt.Errorf("scope repository:%s:%s requested without repository(plugin):%s:%s", name, a, name, a)
			}
		}
		var granted []string
		for _, a := range append(plain, plugin...) {
			allowed := user != "" && (a == "pull" || a == "push")
			allowed = allowed || (user == "" && ts.anonPull && a == "pull")
			if allowed && !slices.Contains(granted, a) {
				granted = append(granted, a)
			}
		}
		if len(granted) > 0 {
			slices.Sort(granted)
			access = append(access, &token.ResourceActions{Type: "repository", Name: name, Actions: granted})
		}
	}
	return access, nil
}

// sign makes a JWT for subject carrying access.
func (ts *tokenServer) sign(subject string, access []*token.ResourceActions) (string, error) {
	now := time.Now()
	claims := token.ClaimSet{
		Issuer:     tokenIssuer,
		Subject:    subject,
		Audience:   token.AudienceList{tokenService},
		Expiration: now.Add(tokenTTL).Unix(),
		NotBefore:  now.Add(-time.Second).Unix(),
		IssuedAt:   now.Unix(),
		JWTID:      fmt.Sprintf("%d", now.UnixNano()),
		Access:     access,
	}
	return jwt.Signed(ts.signer).Claims(claims).Serialize()
}

// newRefreshToken mints a refresh token (an identity token, as docker login
// stores it) for user. Called with ts.mu held.
func (ts *tokenServer) newRefreshToken(user string) string {
	b := make([]byte, 16)
	rand.Read(b)
	tok := fmt.Sprintf("refresh-%x", b)
	ts.refresh[tok] = user
	return tok
}

// IdentityToken returns a refresh token for user, as `docker login` would
// store it as an identity token. Token auth only.
func (r *Registry) IdentityToken(t testing.TB, user string) string {
	t.Helper()
	if r.token == nil {
		t.Fatal("registrytest: IdentityToken needs token auth")
	}
	r.token.mu.Lock()
	defer r.token.mu.Unlock()
	if _, ok := r.token.users[user]; !ok {
		t.Fatalf("registrytest: no user %q", user)
	}
	return r.token.newRefreshToken(user)
}

// RegistryToken returns a bearer token for user granting actions on repo,
// minted directly (what X-Registry-Auth's registrytoken carries). Token auth
// only.
func (r *Registry) RegistryToken(t testing.TB, user, repo string, actions ...string) string {
	t.Helper()
	if r.token == nil {
		t.Fatal("registrytest: RegistryToken needs token auth")
	}
	tok, err := r.token.sign(user, []*token.ResourceActions{{Type: "repository", Name: repo, Actions: actions}})
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	return tok
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
