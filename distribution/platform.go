package distribution

import (
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// normalizePlatform lower-cases and canonicalises a platform the way
// containerd's platforms package does for the fields that matter here:
// x86_64 is amd64, aarch64 is arm64 (variant v8), arm defaults to v7.
func normalizePlatform(p ocispec.Platform) ocispec.Platform {
	out := ocispec.Platform{
		OS:           strings.ToLower(p.OS),
		Architecture: strings.ToLower(p.Architecture),
		Variant:      strings.ToLower(p.Variant),
	}
	switch out.Architecture {
	case "x86_64", "x86-64", "amd64":
		out.Architecture = "amd64"
		if out.Variant == "v1" {
			out.Variant = ""
		}
	case "aarch64", "arm64":
		out.Architecture = "arm64"
		if out.Variant == "" || out.Variant == "8" {
			out.Variant = "v8"
		}
	case "armhf":
		out.Architecture, out.Variant = "arm", "v7"
	case "armel":
		out.Architecture, out.Variant = "arm", "v6"
	case "arm":
		switch out.Variant {
		case "":
			out.Variant = "v7"
		case "5", "6", "7", "8":
			out.Variant = "v" + out.Variant
		}
	case "i386", "386":
		out.Architecture = "386"
	}
	return out
}

// platformString is os/arch[/variant].
func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// platformRank scores how well an index entry's platform fits want (already
// normalised): 0 is exact, higher is a worse but usable fit (an older arm
// variant, or an entry without a platform), and ok false means unusable.
func platformRank(want ocispec.Platform, entry *ocispec.Platform) (rank int, ok bool) {
	if entry == nil {
		return 100, true // no platform given: usable, as a last resort
	}
	got := normalizePlatform(*entry)
	if got.OS != want.OS || got.Architecture != want.Architecture {
		return 0, false
	}
	if got.Variant == want.Variant {
		return 0, true
	}
	if want.Architecture == "arm" && len(got.Variant) == 2 && len(want.Variant) == 2 &&
		got.Variant[0] == 'v' && want.Variant[0] == 'v' && got.Variant[1] < want.Variant[1] {
		return int(want.Variant[1] - got.Variant[1]), true // armv7 runs v6 and v5 code
	}
	return 0, false
}

// selectPlatform picks the best entry for want in index order; ties keep the
// first. It returns -1 when none fits.
func selectPlatform(want ocispec.Platform, entries []ocispec.Descriptor) int {
	best, bestRank := -1, 0
	for i := range entries {
		rank, ok := platformRank(want, entries[i].Platform)
		if ok && (best < 0 || rank < bestRank) {
			best, bestRank = i, rank
		}
	}
	return best
}
