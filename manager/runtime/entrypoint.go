package runtime

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
)

// maxSymlinks bounds symlink resolution, like the kernel's limit.
const maxSymlinks = 40

// checkEntrypoint checks that name, run with working directory cwd and
// environment env, is an executable for this machine in rootfs: the same
// lookup runc does (a name without '/' is searched in PATH), then the ELF
// header, or the interpreter of a #! script.
func checkEntrypoint(rootfs, name, cwd string, env []string) error {
	rel, err := lookEntrypoint(rootfs, name, cwd, env)
	if err != nil {
		return err
	}
	return checkExecutable(rootfs, name, rel, 0)
}

// lookEntrypoint returns the rootfs-relative, symlink-free path of name.
func lookEntrypoint(rootfs, name, cwd string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !path.IsAbs(p) {
			p = path.Join(cwd, p)
		}
		rel, err := resolveInRoot(rootfs, p)
		if err != nil {
			return "", entrypointError(name, p, rootfs, err)
		}
		return rel, nil
	}
	searchPath := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			searchPath = v // the last one wins, as in the plugin's environment
		}
	}
	for dir := range strings.SplitSeq(searchPath, ":") {
		if !path.IsAbs(dir) {
			continue
		}
		rel, err := resolveInRoot(rootfs, path.Join(dir, name))
		if err != nil {
			continue
		}
		if fi, err := os.Stat(filepath.Join(rootfs, rel)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return rel, nil
		}
	}
	return "", preconditionf("entrypoint %q not found in the plugin's PATH (%s) in rootfs %s", name, searchPath, rootfs)
}

func entrypointError(name, p, rootfs string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return preconditionf("entrypoint %s does not exist in the plugin rootfs %s", p, rootfs)
	}
	return preconditionf("entrypoint %q: %v", name, err)
}

// resolveInRoot resolves the absolute path p as if rootfs were "/": symlinks
// are followed, absolute targets and ".." stay inside rootfs. It returns the
// result relative to rootfs ("." for the root itself) and fails when a
// component does not exist.
func resolveInRoot(rootfs, p string) (string, error) {
	resolved := "" // relative to rootfs, no symlinks, no ".."
	rest := strings.Split(p, "/")
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if i := strings.LastIndexByte(resolved, '/'); i >= 0 {
				resolved = resolved[:i]
			} else {
				resolved = ""
			}
			continue
		}
		next := c
		if resolved != "" {
			next = resolved + "/" + c
		}
		host := filepath.Join(rootfs, next)
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if links++; links > maxSymlinks {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			resolved = ""
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	if resolved == "" {
		return ".", nil
	}
	return resolved, nil
}

// checkExecutable checks the file at rel (resolved, inside rootfs). name is
// what the config says, for messages; depth counts #! interpreters.
func checkExecutable(rootfs, name, rel string, depth int) error {
	display := "/" + strings.TrimPrefix(rel, ".")
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return preconditionf("plugin rootfs: %v", err)
	}
	defer func() { _ = root.Close() }()
	// rel has no symlinks, so os.Root only stops a concurrent change that
	// would lead outside the rootfs.
	f, err := root.Open(rel)
	if err != nil {
		return entrypointError(name, display, rootfs, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return preconditionf("entrypoint %q: %v", name, err)
	}
	if !fi.Mode().IsRegular() {
		return preconditionf("entrypoint %s is not a regular file", what(name, display))
	}
	if fi.Mode()&0o111 == 0 {
		return preconditionf("entrypoint %s is not executable (mode %v)", what(name, display), fi.Mode().Perm())
	}
	head := make([]byte, 256)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return preconditionf("entrypoint %q: %v", name, err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte(elf.ELFMAG)):
		return checkELF(what(name, display), head)
	case bytes.HasPrefix(head, []byte("#!")):
		return checkInterpreter(rootfs, name, display, head, depth)
	}
	return preconditionf("entrypoint %s is neither an ELF binary nor a #! script", what(name, display))
}

func checkInterpreter(rootfs, name, display string, head []byte, depth int) error {
	line, _, _ := bytes.Cut(head[2:], []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) == 0 {
		return preconditionf("entrypoint %s is a script without an interpreter", what(name, display))
	}
	interp := fields[0]
	if !path.IsAbs(interp) || depth >= 4 {
		return nil // the kernel's business; nothing sensible to check here
	}
	rel, err := resolveInRoot(rootfs, interp)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return preconditionf("entrypoint %s: its interpreter %s does not exist in the plugin rootfs", what(name, display), interp)
		}
		return preconditionf("entrypoint %q: interpreter %s: %v", name, interp, err)
	}
	return checkExecutable(rootfs, name, rel, depth+1)
}

// archNames names ELF machines the way Go names architectures.
var archNames = map[elf.Machine]string{
	elf.EM_X86_64: "amd64", elf.EM_386: "386", elf.EM_AARCH64: "arm64", elf.EM_ARM: "arm",
	elf.EM_PPC64: "ppc64", elf.EM_S390: "s390x", elf.EM_RISCV: "riscv64",
	elf.EM_LOONGARCH: "loong64", elf.EM_MIPS: "mips",
}

// hostMachines lists the ELF machines each GOARCH runs natively (with the
// 32-bit companion a 64-bit kernel usually runs too).
var hostMachines = map[string][]elf.Machine{
	"amd64": {elf.EM_X86_64, elf.EM_386}, "386": {elf.EM_386},
	"arm64": {elf.EM_AARCH64, elf.EM_ARM}, "arm": {elf.EM_ARM},
	"ppc64": {elf.EM_PPC64}, "ppc64le": {elf.EM_PPC64}, "s390x": {elf.EM_S390},
	"riscv64": {elf.EM_RISCV}, "loong64": {elf.EM_LOONGARCH},
	"mips": {elf.EM_MIPS}, "mipsle": {elf.EM_MIPS}, "mips64": {elf.EM_MIPS}, "mips64le": {elf.EM_MIPS},
}

func machineName(m elf.Machine) string {
	if n, ok := archNames[m]; ok {
		return fmt.Sprintf("%s (%s)", n, m)
	}
	return m.String()
}

// checkELF compares the ELF header's machine and byte order with this host.
func checkELF(desc string, head []byte) error {
	if len(head) < 20 {
		return preconditionf("entrypoint %s has a truncated ELF header", desc)
	}
	var order binary.ByteOrder
	switch elf.Data(head[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		order = binary.LittleEndian
	case elf.ELFDATA2MSB:
		order = binary.BigEndian
	default:
		return preconditionf("entrypoint %s has an invalid ELF header", desc)
	}
	machine := elf.Machine(order.Uint16(head[18:20]))
	want, known := hostMachines[goruntime.GOARCH]
	if !known {
		return nil // an architecture this table does not know: let the kernel decide
	}
	host := want[0]
	for _, m := range want {
		if m == machine {
			if big := order == binary.BigEndian; big != hostIsBigEndian() {
				endian := map[bool]string{true: "big-endian", false: "little-endian"}
				return preconditionf("entrypoint %s is a %s %s binary, but this machine (%s) is %s",
					desc, endian[big], machineName(machine), goruntime.GOARCH, endian[!big])
			}
			return nil
		}
	}
	return preconditionf("entrypoint %s is built for %s, but this machine is %s",
		desc, machineName(machine), machineName(host))
}

// what names an entrypoint in messages: as configured, and where it led
// when that differs.
func what(name, resolved string) string {
	if name == resolved {
		return name
	}
	return fmt.Sprintf("%s (%s)", name, resolved)
}

func hostIsBigEndian() bool {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], 1)
	return b[0] == 0
}
