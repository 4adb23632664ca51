package authz

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/containerd/errdefs"
)

// WaitReady is the start-up check of a chain: every plugin must resolve
// through src. A plugin that is Unavailable (enabled, and being started by
// the runtime after a restart) is waited for until ctx ends; any other
// error fails at once. It returns the plugins' full names ("name:tag") in
// chain order, each once, for the middleware's Config.Plugins.
func WaitReady(ctx context.Context, src Source, plugins []string) ([]string, error) {
	var full []string
	for _, name := range plugins {
		f, err := waitOne(ctx, src, name)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(full, f) {
			full = append(full, f)
		}
	}
	return full, nil
}

func waitOne(ctx context.Context, src Source, name string) (string, error) {
	const poll = 100 * time.Millisecond
	for {
		_, full, err := src.Lookup(name)
		switch {
		case err == nil:
			return full, nil
		case !errdefs.IsUnavailable(err):
			return "", fmt.Errorf("authorization plugin %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("authorization plugin %s is not ready: %w", name, err)
		case <-time.After(poll):
		}
	}
}
