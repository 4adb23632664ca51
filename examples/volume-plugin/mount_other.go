//go:build !linux

package main

import "errors"

// bindMounter exists elsewhere only so that the package builds and its
// tests run there: the plugin itself runs on Linux.
type bindMounter struct{}

func (bindMounter) bind(string, string) error { return errors.ErrUnsupported }

func (bindMounter) unbind(string) error { return errors.ErrUnsupported }
