// Package distribution is pluginsd's registry client. It resolves a plugin
// reference to its manifest and config, streams blobs with verification, and
// pushes blobs and manifests, speaking the Docker registry HTTP API v2 through
// oras-go.
//
// Everything a registry sends is checked: manifests fetched by digest must
// hash to that digest, manifests fetched by tag must hash to the digest the
// registry announced, and every blob is checked for size and digest while it
// streams. Registry failures leave this package classed with
// github.com/containerd/errdefs, keeping the registry's own message text:
//
//	401                                   errdefs.ErrUnauthenticated
//	403                                   errdefs.ErrPermissionDenied
//	404, MANIFEST_UNKNOWN, NAME_UNKNOWN   errdefs.ErrNotFound
//	429, 5xx, refused, timeouts           errdefs.ErrUnavailable
//	size or digest mismatch               errdefs.ErrDataLoss
//	over a cap (see MaxManifestSize ...)  errdefs.ErrResourceExhausted
//	not a plugin, schema1, bad documents  errdefs.ErrInvalidArgument
//	no entry for this platform            errdefs.ErrNotFound
package distribution

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// DefaultCertsDir is where per-registry TLS material lives unless
// Options.CertsDir says otherwise (the Docker convention).
const DefaultCertsDir = "/etc/docker/certs.d"

// oauthClientID is what dockerd's resolver sends as client_id in OAuth2 token
// requests (wire-verified against dockerd 20.10, spec §8.2).
const oauthClientID = "containerd-client"

// Auth is the credential of one request, decoded by the caller from
// X-Registry-Auth. All fields empty means anonymous.
type Auth struct {
	Username      string
	Password      string
	IdentityToken string // used as an OAuth2 refresh token
	RegistryToken string // used directly as the bearer access token
}

func (a Auth) credential() auth.Credential {
	return auth.Credential{
		Username:     a.Username,
		Password:     a.Password,
		RefreshToken: a.IdentityToken,
		AccessToken:  a.RegistryToken,
	}
}

// Options configures a Client. The zero value is usable.
type Options struct {
	// InsecureRegistries lists registries, as host[:port] or as a CIDR, that
	// may be reached over plain HTTP and whose TLS certificates are not
	// verified. 127.0.0.0/8, ::1 and "localhost" are always insecure, as in
	// dockerd.
	InsecureRegistries []string

	// CertsDir holds <dir>/<host[:port]>/ with *.crt (extra CAs) and
	// *.cert + *.key pairs (client certificates). Default DefaultCertsDir.
	CertsDir string

	// UserAgent is sent with every request when not empty.
	UserAgent string

	// Platform selects the entry of an image index or manifest list.
	// Default: this machine.
	Platform ocispec.Platform

	// Transport is the base round tripper. Default: a clone of
	// http.DefaultTransport, which honours HTTP_PROXY, HTTPS_PROXY and
	// NO_PROXY. When it is an *http.Transport it is cloned per host to apply
	// CertsDir and insecure-registry TLS settings; any other RoundTripper is
	// used as is, and CertsDir and TLS relaxation are then its concern.
	Transport http.RoundTripper
}

// Target is one registry operation's subject and the caller's credentials.
type Target struct {
	// Ref is a normalized reference (docker.io/library/x:tag,
	// localhost:5000/x@sha256:...). A name without tag or digest means
	// :latest.
	Ref  reference.Named
	Auth Auth
	// MetaHeaders are forwarded to every request sent to the registry host
	// (not to token servers). Only X-Meta-* keys are forwarded.
	MetaHeaders map[string][]string
}

// Client talks to registries. It is safe for concurrent use; it caches
// per-host TLS transports, the HTTPS-to-HTTP fallback decision for insecure
// registries, and bearer tokens per credential.
type Client struct {
	userAgent     string
	platform      ocispec.Platform
	certsDir      string
	insecureHosts map[string]bool
	insecureNets  []netip.Prefix

	base          http.RoundTripper // used as is when baseTransport is nil
	baseTransport *http.Transport   // template cloned per host for TLS settings
	// baseTLS is a private copy of baseTransport's TLS settings, taken
	// once: http.Transport.Clone sets up the template's own TLSClientConfig
	// (HTTP/2 protocols) on first use, so reading that field while another
	// goroutine clones the transport is a data race.
	baseTLS     *tls.Config
	retryPolicy retry.Policy

	mu     sync.Mutex
	hosts  map[string]*hostState // guarded by mu; keyed by lower-case host[:port]
	caches map[string]auth.Cache // guarded by mu; keyed by host and credential fingerprint
}

// hostState is what the client learnt about one host.
type hostState struct {
	transport  http.RoundTripper
	certsStamp string // CertsDir state the transport was built from
	plainHTTP  bool   // insecure registry that answered HTTPS with plain HTTP
	oauthGET   bool   // token service refused the OAuth2 POST grant; use GET
}

// New returns a Client. It fails only on malformed options.
func New(opts Options) (*Client, error) {
	c := &Client{
		userAgent:     opts.UserAgent,
		certsDir:      opts.CertsDir,
		insecureHosts: map[string]bool{},
		retryPolicy:   retry.DefaultPolicy,
		hosts:         map[string]*hostState{},
		caches:        map[string]auth.Cache{},
	}
	if c.certsDir == "" {
		c.certsDir = DefaultCertsDir
	}
	for _, s := range opts.InsecureRegistries {
		s = strings.ToLower(strings.TrimSpace(s))
		switch {
		case s == "":
			continue
		case strings.Contains(s, "://"):
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("insecure registry %s should not contain '://'", s))
		case strings.Contains(s, "/"):
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("insecure registry %s: %v", s, err))
			}
			c.insecureNets = append(c.insecureNets, p.Masked())
		default:
			c.insecureHosts[s] = true
		}
	}
	c.platform = normalizePlatform(opts.Platform)
	if opts.Platform.OS == "" || opts.Platform.Architecture == "" {
		c.platform = normalizePlatform(defaultPlatform())
	}
	switch t := opts.Transport.(type) {
	case nil:
		c.baseTransport = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		c.baseTransport = t.Clone() // the caller may go on using t
	default:
		c.base = t
	}
	if c.baseTransport != nil {
		c.baseTLS = c.baseTransport.TLSClientConfig.Clone() // nil stays nil
	}
	return c, nil
}

// Platform reports the platform used to choose index entries.
func (c *Client) Platform() ocispec.Platform { return c.platform }

// repoReference maps a reference onto oras's form: the domain stays as is
// (oras sends docker.io traffic to registry-1.docker.io) and the tag or
// digest is dropped; operations set what they address.
func repoReference(named reference.Named) (registry.Reference, error) {
	if named == nil {
		return registry.Reference{}, errdefs.ErrInvalidArgument.WithMessage("no reference given")
	}
	ref := registry.Reference{
		Registry:   reference.Domain(named),
		Repository: reference.Path(named),
	}
	if err := ref.ValidateRegistry(); err != nil {
		return registry.Reference{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("%s: %v", named, err))
	}
	if err := ref.ValidateRepository(); err != nil {
		return registry.Reference{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("%s: %v", named, err))
	}
	return ref, nil
}

// pluginScopes are the token scopes dockerd asks for on plugin operations:
// the repository(plugin) class and the plain class (spec §8.2, §8.4, B15).
func pluginScopes(repo string, push bool) []string {
	actions := "pull"
	if push {
		actions = "pull,push"
	}
	return []string{
		"repository(plugin):" + repo + ":" + actions,
		"repository:" + repo + ":" + actions,
	}
}

// noRetry marks an operation error that must not be retried with another
// scheme or grant type, because the operation consumed input it cannot
// replay.
type noRetry struct{ error }

func (e noRetry) Unwrap() error { return e.error }

// do runs op against the repository of t with an authenticating HTTP client,
// and classifies the error it returns. op may run twice: once more over plain
// HTTP when an insecure registry turns out not to speak TLS, or once more
// with the GET token flow when the token service refuses the OAuth2 POST.
func (c *Client) do(ctx context.Context, t Target, push bool, op func(context.Context, *remote.Repository) error) error {
	ref, err := repoReference(t.Ref)
	if err != nil {
		return err
	}
	host := ref.Host()
	ctx = auth.AppendScopesForHost(ctx, host, pluginScopes(ref.Repository, push)...)
	ac := c.authClient(t, host)
	schemeRetried, grantRetried := false, false
	for {
		repo := &remote.Repository{
			Client:             ac,
			Reference:          ref,
			PlainHTTP:          c.plainHTTP(host),
			ManifestMediaTypes: manifestAccept,
			MaxMetadataBytes:   MaxManifestSize,
		}
		err := op(ctx, repo)
		if err == nil {
			return nil
		}
		if final, ok := errors.AsType[noRetry](err); ok {
			return classify(final.error)
		}
		if !repo.PlainHTTP && !schemeRetried && c.insecure(host) && speaksPlainHTTP(err) {
			schemeRetried = true
			c.setPlainHTTP(host)
			continue
		}
		if ac.ForceAttemptOAuth2 && !grantRetried && oauthPostRefused(err) {
			grantRetried = true
			c.setOAuthGET(host)
			ac.ForceAttemptOAuth2 = false
			continue
		}
		return classify(err)
	}
}

// authClient builds the per-operation HTTP stack:
// auth.Client -> retry -> headers (User-Agent, X-Meta-*) -> per-host transport.
func (c *Client) authClient(t Target, host string) *auth.Client {
	meta := http.Header{}
	for k, vs := range t.MetaHeaders {
		if strings.HasPrefix(strings.ToLower(k), "x-meta-") && len(vs) > 0 {
			meta[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
		}
	}
	policy := c.retryPolicy
	hc := &http.Client{Transport: &retry.Transport{
		Base:   &decorator{c: c, registryHost: host, meta: meta},
		Policy: func() retry.Policy { return policy },
	}}
	cred := t.Auth.credential()
	st := c.state(host)
	c.mu.Lock()
	oauthGET := st.oauthGET
	c.mu.Unlock()
	return &auth.Client{
		Client: hc,
		Credential: func(_ context.Context, hostport string) (auth.Credential, error) {
			if strings.EqualFold(hostport, host) {
				return cred, nil
			}
			return auth.EmptyCredential, nil
		},
		Cache:                c.tokenCache(host, t.Auth),
		ClientID:             oauthClientID,
		ForceAttemptOAuth2:   !oauthGET,
		BlockedRealmPrefixes: realmBlocklist(host),
	}
}

// decorator adds the User-Agent to every request and the X-Meta-* headers to
// requests for the registry host, then sends through the host's transport.
type decorator struct {
	c            *Client
	registryHost string
	meta         http.Header
}

func (d *decorator) RoundTrip(req *http.Request) (*http.Response, error) {
	rt, err := d.c.transportFor(req.URL.Host)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	if d.c.userAgent == "" && (len(d.meta) == 0 || !sameHost(req.URL, d.registryHost)) {
		return rt.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	if d.c.userAgent != "" {
		r.Header.Set("User-Agent", d.c.userAgent)
	}
	if sameHost(req.URL, d.registryHost) {
		maps.Copy(r.Header, d.meta)
	}
	return rt.RoundTrip(r)
}

// tokenCache returns the auth cache shared by operations with the same host
// and credential, so bearer tokens are reused without ever crossing from one
// credential to another.
func (c *Client) tokenCache(host string, a Auth) auth.Cache {
	key := credentialKey(host, a)
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.caches[key]; ok {
		return ch
	}
	if len(c.caches) >= maxTokenCaches {
		for k := range c.caches { // evict an arbitrary entry; tokens are cheap to refetch
			delete(c.caches, k)
			break
		}
	}
	ch := auth.NewCache()
	c.caches[key] = ch
	return ch
}

// maxTokenCaches bounds the number of per-credential token caches.
const maxTokenCaches = 256

func (c *Client) state(host string) *hostState {
	host = strings.ToLower(host)
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.hosts[host]
	if !ok {
		st = &hostState{}
		c.hosts[host] = st
	}
	return st
}

func (c *Client) plainHTTP(host string) bool {
	st := c.state(host)
	c.mu.Lock()
	defer c.mu.Unlock()
	return st.plainHTTP
}

func (c *Client) setPlainHTTP(host string) {
	st := c.state(host)
	c.mu.Lock()
	st.plainHTTP = true
	c.mu.Unlock()
}

func (c *Client) setOAuthGET(host string) {
	st := c.state(host)
	c.mu.Lock()
	st.oauthGET = true
	c.mu.Unlock()
}

// defaultPlatform is this machine's platform; the arm variant comes from the
// binary's GOARM build setting.
func defaultPlatform() ocispec.Platform {
	p := ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm":
		p.Variant = "v" + goarm()
	case "arm64":
		p.Variant = "v8"
	}
	return p
}
