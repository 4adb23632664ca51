// Package rootfs turns untrusted tar streams into plugin root filesystems.
//
// Two entry points share one extractor:
//
//   - [Split] consumes the body of `POST /plugins/create`, a tar build
//     context holding config.json and a rootfs/ tree. In a single streaming
//     pass it returns the config bytes, extracts rootfs/ into a directory and
//     re-emits the same rootfs entries (with the rootfs/ prefix stripped) as
//     a layer tar, so the layer digest is known the moment the body ends.
//   - [Apply] extracts one layer (a plain tar, already decompressed by the
//     caller) into a directory, honouring OCI/Docker whiteouts.
//
// # Safety contract
//
// The tar is never trusted. Every filesystem operation goes through an
// [os.Root] opened on the target directory, so nothing is ever created,
// written, linked, chmod'ed or chown'ed outside it, even when earlier entries
// planted symlinks that point elsewhere. Concretely:
//
//   - Entry names are cleaned (path.Clean, leading "/" and "./" dropped).
//     A name holding a ".." element is refused outright, whether or not it
//     would still land inside the tree: real archives never need one.
//   - Symlinks are stored verbatim (absolute targets are normal in a rootfs;
//     they are resolved later, inside the plugin's container). A later entry
//     whose path runs through a symlink leaving the tree fails; os.Root
//     treats absolute symlinks as leaving the tree.
//   - A hardlink must name an existing regular file inside the tree.
//   - Regular files, directories, symlinks and hardlinks are extracted.
//     Character and block devices and FIFOs are not created (no mknod), but
//     Split still writes them to the layer. Sparse files and any other type
//     are refused. PAX global headers are skipped.
//   - An existing non-directory at an entry's path is replaced; a directory
//     entry over an existing directory only updates its metadata; a
//     non-directory entry over a directory removes the directory first.
//   - Ownership, permission bits (including setuid, setgid and sticky) and
//     mtimes are applied. Directory mode and mtime are applied after the
//     last entry, because creating children would bump the mtime and a
//     read-only directory would block its children.
//     Symlink mtimes are not set and hardlink entries do not alter the
//     metadata of the inode they share. Extended attributes are copied into
//     Split's layer (as PAX records) but not applied to the filesystem.
//   - The metadata of the tree's root entry (rootfs/ in Split, ./ in Apply)
//     is ignored, so the caller decides the mode of the directory it made.
//   - At most [MaxEntries] entries and names of at most [MaxNameLen] bytes.
//
// # Errors
//
// Anything the client got wrong (malformed tar or gzip, hostile names or
// links, missing config.json or rootfs, an entry the tree cannot hold) is
// returned as an error for which errdefs.IsInvalidArgument is true; its text
// names the offending entry. Failures of the server's own disk (ENOSPC, EIO,
// EROFS, quota...), of the layer writer, and of reading the body (other than
// truncation) are returned wrapped but not classified, and context
// cancellation returns the context's error.
package rootfs

import (
	"context"
	"io"
)

const (
	// MaxConfigSize caps config.json in a build context.
	MaxConfigSize = 1 << 20
	// MaxEntries caps the number of tar entries read from one stream,
	// including ignored ones.
	MaxEntries = 1_000_000
	// MaxNameLen caps the byte length of entry names and link targets.
	MaxNameLen = 4096
)

// Split reads a `POST /plugins/create` body: a tar build context holding
// config.json and rootfs/.
//
// The body is an uncompressed tar, or a gzip-compressed one (as sent by
// `docker plugin create --compress`), detected by its magic bytes. The
// top-level config.json entry is returned (at most [MaxConfigSize] bytes; a
// second config.json is an error). Every entry under rootfs/ is extracted
// into dir, which must be an existing empty directory, and written, with the
// rootfs/ prefix stripped from its name and from hardlink targets, to a tar
// stream on layer; the tar writer is closed on success but layer itself is
// left to the caller. Entries outside config.json and rootfs/ are ignored.
// Entries under rootfs/ whose base name starts with ".wh." are refused,
// since in the layer they would read as whiteouts.
//
// The layer is a function of the input alone: identical bodies yield
// byte-identical layers.
//
// On error dir may hold a partial tree, which the caller should remove.
func Split(ctx context.Context, r io.Reader, dir string, layer io.Writer) (config []byte, err error) {
	return split(ctx, r, dir, layer)
}

// Apply extracts a layer (a plain tar stream; the caller decompresses) into
// dir with the same safety rules as [Split], plus OCI/Docker whiteouts: an
// entry a/b/.wh.name deletes a/b/name and a/b/.wh..wh..opq empties
// directory a/b of everything not written by this layer. Whiteout entries
// themselves are not created; other ".wh..wh." entries (AUFS metadata) are
// skipped.
//
// On error dir may be partly modified.
func Apply(ctx context.Context, r io.Reader, dir string) error {
	return apply(ctx, r, dir)
}
