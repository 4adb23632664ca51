package integration

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	dockertypes "github.com/docker/docker/api/types"
	dockerfilters "github.com/docker/docker/api/types/filters"
	dockerclient "github.com/docker/docker/client"
	"github.com/google/go-cmp/cmp"
	mobyclient "github.com/moby/moby/client"
)

// tarDir returns an uncompressed tar of dir, as the SDK's callers build a
// create context.
func tarDir(t testing.TB, dir string) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// TestMobyClient drives pluginsd with the maintained SDK client,
// github.com/moby/moby/client, negotiating the API version.
func TestMobyClient(t *testing.T) {
	d := startDaemon(t, "")
	ctx := t.Context()
	c, err := mobyclient.New(mobyclient.WithHost(d.host()), mobyclient.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ping, err := c.Ping(ctx, mobyclient.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		t.Fatal(err)
	}
	if ping.APIVersion != "1.57" || ping.OSType != "linux" || c.ClientVersion() != "1.57" {
		t.Errorf("ping: %+v, negotiated %s", ping, c.ClientVersion())
	}
	if _, err := c.PluginCreate(ctx, tarDir(t, pluginDir(t, volConfig("/tmp"))), mobyclient.PluginCreateOptions{RepoName: "sdk/vol:1.0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PluginCreate(ctx, tarDir(t, pluginDir(t, argsConfig)), mobyclient.PluginCreateOptions{RepoName: "sdk/args"}); err != nil {
		t.Fatal(err)
	}
	list, err := c.PluginList(ctx, mobyclient.PluginListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list.Items {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"sdk/args:latest", "sdk/vol:1.0"}, names); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	list, err = c.PluginList(ctx, mobyclient.PluginListOptions{Filters: make(mobyclient.Filters).Add("enabled", "false").Add("capability", "volume")})
	if err != nil || len(list.Items) != 2 {
		t.Errorf("filtered list: %v %d", err, len(list.Items))
	}
	list, err = c.PluginList(ctx, mobyclient.PluginListOptions{Filters: make(mobyclient.Filters).Add("enabled", "true")})
	if err != nil || len(list.Items) != 0 {
		t.Errorf("enabled=true: %v %d", err, len(list.Items))
	}
	if _, err := c.PluginList(ctx, mobyclient.PluginListOptions{Filters: make(mobyclient.Filters).Add("enable", "true")}); err == nil {
		t.Error(`the "enable" filter key was accepted`)
	}

	res, err := c.PluginInspect(ctx, "sdk/vol:1.0", mobyclient.PluginInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Plugin.Config.Interface.Types[0].String(); got != "docker.volumedriver/1.0" {
		t.Errorf("interface type %q", got)
	}
	// The raw JSON has dockerd's keys: no DockerVersion at API 1.57.
	var raw struct{ Config map[string]json.RawMessage }
	if err := json.Unmarshal(res.Raw, &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw.Config["DockerVersion"]; ok {
		t.Error("DockerVersion shown at API 1.57")
	}
	if _, err := c.PluginSet(ctx, "sdk/vol:1.0", mobyclient.PluginSetOptions{Args: []string{"DEBUG=9"}}); err != nil {
		t.Fatal(err)
	}
	res, err = c.PluginInspect(ctx, res.Plugin.ID[:10], mobyclient.PluginInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"MODE=volume", "DEBUG=9"}, res.Plugin.Settings.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if _, err := c.PluginRemove(ctx, "sdk/vol:1.0", mobyclient.PluginRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.PluginInspect(ctx, "sdk/vol:1.0", mobyclient.PluginInspectOptions{})
	if err == nil || err.Error() != `Error response from daemon: plugin "sdk/vol:1.0" not found` {
		t.Errorf("inspect after remove: %v", err)
	}
}

// TestDockerClient drives pluginsd with the frozen github.com/docker/docker
// client that older tools still use, negotiating the API version down to the
// client's maximum, where Config.DockerVersion is part of the object.
func TestDockerClient(t *testing.T) {
	d := startDaemon(t, "")
	ctx := t.Context()
	c, err := dockerclient.NewClientWithOpts(dockerclient.WithHost(d.host()), dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.PluginCreate(ctx, tarDir(t, pluginDir(t, volConfig("/tmp"))), dockerTypesCreateOptions("old/vol")); err != nil {
		t.Fatal(err)
	}
	if v := c.ClientVersion(); v != "1.51" {
		t.Errorf("negotiated %s, want the client's maximum 1.51", v)
	}
	list, err := c.PluginList(ctx, dockerfilters.NewArgs(dockerfilters.Arg("capability", "volumedriver")))
	if err != nil || len(list) != 1 || list[0].Name != "old/vol:latest" {
		t.Fatalf("list: %v %+v", err, list)
	}
	p, raw, err := c.PluginInspectWithRaw(ctx, "old/vol")
	if err != nil {
		t.Fatal(err)
	}
	if p.Config.Interface.Types[0].String() != "docker.volumedriver/1.0" || p.Settings.Env[1] != "DEBUG=0" {
		t.Errorf("inspect: %+v", p)
	}
	var obj struct{ Config map[string]json.RawMessage }
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	if _, ok := obj.Config["DockerVersion"]; ok {
		t.Error("DockerVersion shown at API 1.51")
	}
	if err := c.PluginSet(ctx, "old/vol", []string{"data.source=/srv"}); err != nil {
		t.Fatal(err)
	}
	if err := c.PluginRemove(ctx, "old/vol", dockerTypesRemoveOptions(true)); err != nil {
		t.Fatal(err)
	}
	// Pinned to 1.41 (dockerd 20.10's version), DockerVersion is shown.
	old, err := dockerclient.NewClientWithOpts(dockerclient.WithHost(d.host()), dockerclient.WithVersion("1.41"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.PluginCreate(ctx, tarDir(t, pluginDir(t, volConfig("/tmp"))), dockerTypesCreateOptions("old/vol2")); err != nil {
		t.Fatal(err)
	}
	p, _, err = old.PluginInspectWithRaw(ctx, "old/vol2")
	if err != nil {
		t.Fatal(err)
	}
	if p.Config.DockerVersion != "test" {
		t.Errorf("DockerVersion at 1.41 = %q, want the server version", p.Config.DockerVersion)
	}
}

func dockerTypesCreateOptions(name string) dockertypes.PluginCreateOptions {
	return dockertypes.PluginCreateOptions{RepoName: name}
}

func dockerTypesRemoveOptions(force bool) dockertypes.PluginRemoveOptions {
	return dockertypes.PluginRemoveOptions{Force: force}
}
