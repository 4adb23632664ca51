package manager

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/pluginsd/pluginsd/manager/runtime"
)

// idleRuntime runs nothing: enabled plugins stay "being started".
type idleRuntime struct{}

func (idleRuntime) Start(ctx context.Context, p runtime.Plugin, timeout time.Duration) (*runtime.Task, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (idleRuntime) Stop(context.Context, string, time.Duration) error { return nil }
func (idleRuntime) Restore(context.Context) (map[string]*runtime.Task, error) {
	return map[string]*runtime.Task{}, nil
}
func (idleRuntime) RemoveLogs(string) error   { return nil }
func (idleRuntime) LogIDs() ([]string, error) { return nil, nil }

const authzConfig = `{"description":"authz","entrypoint":["/authz"],` +
	`"interface":{"socket":"a.sock","types":["docker.authz/1.0"]}}`

func TestAuthzPlugin(t *testing.T) {
	m, err := New(Config{DataRoot: t.TempDir(), Version: testVersion, Runtime: idleRuntime{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeManager(t, m) })
	az := mustCreate(t, m, "az", goodContext(t, authzConfig))
	mustCreate(t, m, "vol", goodContext(t, minimalConfig))

	for _, tt := range []struct {
		name  string
		class func(error) bool
		msg   string
	}{
		{"nosuch", errdefs.IsNotFound, `plugin "nosuch" not found`},
		{"vol", errdefs.IsFailedPrecondition, "plugin vol:latest does not implement the authz interface (docker.authz/1.0)"},
		{"az", errdefs.IsFailedPrecondition, "plugin az:latest is not enabled"},
		{"az:latest", errdefs.IsFailedPrecondition, "plugin az:latest is not enabled"},
		{"docker.io/library/az:latest", errdefs.IsFailedPrecondition, "plugin az:latest is not enabled"},
		{"Bad Name", errdefs.IsInvalidArgument, ""},
		{az.ID(), errdefs.IsInvalidArgument, ""}, // names only, as --authorization-plugin takes them
	} {
		_, _, err := m.AuthzPlugin(tt.name)
		if !tt.class(err) || (tt.msg != "" && err.Error() != tt.msg) {
			t.Errorf("AuthzPlugin(%q) = %v, want class and message %q", tt.name, err, tt.msg)
		}
	}

	// Enabled but with no running task (the supervisor is still starting
	// it): Unavailable, so requests fail with 503 and start-up waits.
	setRecord(t, m, az.ID(), func(r *Plugin) { r.Plugin.Enabled = true })
	m.supervise(az.ID(), nil)
	if _, _, err := m.AuthzPlugin("az"); !errdefs.IsUnavailable(err) {
		t.Errorf("AuthzPlugin of an enabled plugin that is not running = %v, want Unavailable", err)
	}
}

func TestAuthzPluginNoRuntime(t *testing.T) {
	m, _ := newManager(t)
	if _, _, err := m.AuthzPlugin("az"); !errdefs.IsNotImplemented(err) {
		t.Errorf("AuthzPlugin without a runtime = %v, want NotImplemented", err)
	}
}

// TestProtectAuthz: a plugin in the chain cannot be disabled or
// force-removed (public case B25); others can.
func TestProtectAuthz(t *testing.T) {
	m, err := New(Config{DataRoot: t.TempDir(), Version: testVersion, Protected: ProtectAuthz([]string{"docker.io/library/az", "other:1.0", "Not A Name"})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeManager(t, m) })
	ctx := t.Context()
	az := mustCreate(t, m, "az", goodContext(t, authzConfig))
	free := mustCreate(t, m, "free", goodContext(t, authzConfig))
	for _, p := range []*Plugin{az, free} {
		setRecord(t, m, p.ID(), func(r *Plugin) { r.Plugin.Enabled = true })
	}
	want := "plugin az:latest is in the authorization chain (--authorization-plugin); remove it from the configuration first"
	if err := m.Disable(ctx, DisableRequest{Name: "az"}); !errdefs.IsConflict(err) || err.Error() != want {
		t.Errorf("Disable of a chain plugin = %v, want Conflict %q", err, want)
	}
	if err := m.Disable(ctx, DisableRequest{Name: az.ID()[:12], Force: true}); !errdefs.IsConflict(err) {
		t.Errorf("forced Disable of a chain plugin by ID prefix = %v, want Conflict", err)
	}
	if err := m.Remove(ctx, RemoveRequest{Name: "az", Force: true}); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "authorization chain") {
		t.Errorf("forced Remove of a chain plugin = %v, want Conflict", err)
	}
	if p, err := m.Inspect(ctx, "az"); err != nil || !p.Plugin.Enabled {
		t.Errorf("after refusals: %v, enabled=%v", err, p != nil && p.Plugin.Enabled)
	}
	if err := m.Disable(ctx, DisableRequest{Name: "free"}); err != nil {
		t.Errorf("Disable of a plugin outside the chain: %v", err)
	}
}
