// Package runtime runs managed plugins as runc containers.
//
// # Process model
//
// Start writes an OCI bundle for the plugin (see [Spec]) and runs
//
//	runc --root <StateDir> run --bundle <BundleRoot>/<id> --pid-file ... <id>
//
// in the foreground as a child of pluginsd, in its own process group, with
// stdin on /dev/null and stdout and stderr appended to <LogRoot>/<id>.log.
// runc stays the parent of the plugin and exits with the plugin's exit
// status, which is how a [Task] started here knows it. runc is reaped through
// a pidfd registered with the Go netpoller, so the goroutine waiting for it
// can be stopped by [Runtime.Close] without stopping the plugin.
//
// Nothing ties runc or the plugin to pluginsd: no pipes (the log is a regular
// file, so a plugin never gets SIGPIPE), no parent-death signal, no request
// context. When pluginsd exits, plugins keep running, and [Runtime.Restore]
// adopts them from runc's state directory after a restart, watching the
// plugin's init process through a pidfd. The exit status of an adopted
// plugin is not known (it is runc's child, not ours).
//
// # Logs
//
// A plugin's stdout and stderr share one append-only file, so the two
// streams keep their relative order (the error of a failed start quotes the
// last lines of both); which stream a line came from is lost, and every
// relayed line is logged at info level with the field plugin=<id>. runc's
// own error messages land in the same file. A file larger than 16 MiB is
// rotated to <id>.log.1 when the plugin next starts.
//
// # Cleanup
//
// [Runtime.Stop] leaves nothing behind: the runc state, the bundle, the
// socket directory <SocketRoot>/<id> and every host mount made for the
// plugin (its propagated-mount directory, and anything under its rootfs).
// A plugin that exits on its own keeps its bundle and mounts until the owner
// calls Stop (or Start again, which clears what an earlier run left).
package runtime
