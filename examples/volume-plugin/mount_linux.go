package main

import "syscall"

// bindMounter makes real bind mounts; the plugin needs CAP_SYS_ADMIN for it.
type bindMounter struct{}

func (bindMounter) bind(source, target string) error {
	return syscall.Mount(source, target, "", syscall.MS_BIND|syscall.MS_REC, "")
}

func (bindMounter) unbind(target string) error {
	return syscall.Unmount(target, 0)
}
