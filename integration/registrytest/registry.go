// Package registrytest runs a real distribution v3 registry in the test
// process (registry/handlers on in-memory storage behind httptest, on
// 127.0.0.1), optionally behind htpasswd or token authentication with a
// token service of its own, and pushes plugin, image and index fixtures into
// it. It is test-only: nothing outside integration tests may import it.
package registrytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // auth "htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"    // auth "token"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/pluginsd/pluginsd/distribution"
)

// Authentication modes.
const (
	AuthNone     = ""
	AuthHtpasswd = "htpasswd"
	AuthToken    = "token"
)

// Options configures a Registry.
type Options struct {
	// Auth is AuthNone, AuthHtpasswd or AuthToken.
	Auth string
	// Users are the accounts (name to password) for htpasswd and token
	// auth. Every user may pull and push every repository.
	Users map[string]string
	// AnonymousPull lets the token service grant pull to anonymous
	// requests (a public registry). Token auth only.
	AnonymousPull bool
	// TLS serves the registry (and token service) over HTTPS with
	// httptest's certificate; CACert holds it.
	TLS bool
}

// Registry is a running registry. Its fields are read-only.
type Registry struct {
	Host string // 127.0.0.1:port
	URL  string // http(s)://127.0.0.1:port
	// TokenURL is the token service's realm (token auth only).
	TokenURL string
	// CACert is the PEM certificate the servers present (TLS only).
	CACert []byte
	// TokenRequests returns every request the token service answered so
	// far, in order, except those made by the fixture helpers. Nil unless
	// the registry uses token auth.
	TokenRequests func() []TokenRequest

	opts    Options
	fixture distribution.Auth // credentials the fixture helpers push with
	client  *distribution.Client
	token   *tokenServer

	mu        sync.Mutex
	manifests map[digest.Digest]ocispec.Descriptor // guarded by mu; what fixtures pushed
}

// fixtureUser is the account the fixture helpers push with.
const fixtureUser = "registrytest-fixtures"

// New starts a registry on 127.0.0.1 and stops it when the test ends.
func New(t testing.TB, opts Options) *Registry {
	t.Helper()
	// The registry logs every 404 (blob checks before a push) at error
	// level; keep test output readable unless asked for.
	if testing.Verbose() {
		logrus.SetLevel(logrus.WarnLevel)
	} else {
		logrus.SetLevel(logrus.FatalLevel)
	}

	r := &Registry{opts: opts, manifests: map[digest.Digest]ocispec.Descriptor{}}
	users := maps.Clone(opts.Users)
	if users == nil {
		users = map[string]string{}
	}
	if opts.Auth != AuthNone {
		r.fixture = distribution.Auth{Username: fixtureUser, Password: randomString(t)}
		users[fixtureUser] = r.fixture.Password
	}

	cfg := &configuration.Configuration{}
	cfg.HTTP.Secret = randomString(t)
	cfg.Storage = configuration.Storage{
		"inmemory":    configuration.Parameters{},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	}
	switch opts.Auth {
	case AuthNone:
	case AuthHtpasswd:
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{
			"realm": "registrytest",
			"path":  writeHtpasswd(t, users),
		}}
	case AuthToken:
		r.token = newTokenServer(t, users, opts.AnonymousPull, opts.TLS)
		r.TokenURL = r.token.realm()
		r.TokenRequests = r.token.requestsExcept(fixtureUser)
		cfg.Auth = configuration.Auth{"token": configuration.Parameters{
			"realm":   r.TokenURL,
			"service": tokenService,
			"issuer":  tokenIssuer,
			"jwks":    r.token.jwksFile,
		}}
	default:
		t.Fatalf("registrytest: unknown auth %q", opts.Auth)
	}

	ctx, cancel := context.WithCancel(context.Background())
	app := handlers.NewApp(ctx, cfg)
	srv := httptest.NewUnstartedServer(app)
	if opts.TLS {
		srv.StartTLS()
		r.CACert = certPEM(srv.Certificate())
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		srv.Close()
		if err := app.Shutdown(); err != nil {
			t.Logf("registrytest: shutdown: %v", err)
		}
		cancel()
	})
	r.URL = srv.URL
	r.Host = srv.Listener.Addr().String()

	client, err := distribution.New(distribution.Options{CertsDir: t.TempDir(), UserAgent: "registrytest"})
	if err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	r.client = client
	return r
}

// Ref is the registry's name for repoTag: "<Host>/<repoTag>".
func (r *Registry) Ref(repoTag string) string { return r.Host + "/" + repoTag }

func writeHtpasswd(t testing.TB, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	for u, p := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("registrytest: %v", err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, hash)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	return path
}

func randomString(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	return hex.EncodeToString(b)
}
