package rootfs

import (
	"path"
	"strings"
)

// cleanName turns an entry name (or hardlink target) into a slash path
// relative to the top of the archive: "./a", "/a" and "a//b/../a" style
// noise is normalised and "." stands for the top itself. Names that are too
// long, hold a NUL, or contain a ".." element are refused: such names only
// come from archives trying to reach outside the tree.
func cleanName(name string) (string, error) {
	if len(name) > MaxNameLen {
		return "", invalidf("entry name %.64q... is longer than %d bytes", name, MaxNameLen)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", invalidf("entry name %q holds a NUL byte", name)
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == ".." {
			return "", invalidf("entry name %q contains \"..\": refusing a path that may leave the tree", name)
		}
	}
	clean := strings.TrimPrefix(path.Clean("/"+name), "/")
	if clean == "" {
		return ".", nil
	}
	return clean, nil
}

// splitFirst splits a cleaned name into its first element and the rest,
// with "." as the rest when there is none.
func splitFirst(name string) (first, rest string) {
	first, rest, _ = strings.Cut(name, "/")
	if rest == "" {
		rest = "."
	}
	return first, rest
}

// whiteoutPrefix marks OCI/Docker whiteout entries in a layer.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = whiteoutPrefix + whiteoutPrefix
	whiteoutOpaque = whiteoutMeta + ".opq"
)

func isWhiteout(name string) bool {
	return strings.HasPrefix(path.Base(name), whiteoutPrefix)
}
