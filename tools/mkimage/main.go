// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Command mkimage turns the bare-metal big-iron ELF into boot images.
//
// Usage:
//
//	mkimage -multiboot -o build/bigiron.mb build/bigiron.elf
//	mkimage -pxe build/pxe [-cmdline 'console=ttyS0'] build/bigiron.elf
//
// -multiboot writes a Multiboot 1 image (flat binary with the address
// fields) that GRUB 2's `multiboot` command and iPXE's `kernel` command
// load. -pxe DIR writes a network-boot directory for a TFTP/HTTP server:
// bigiron.elf (a copy of the input), bigiron.mb, boot.ipxe (iPXE script)
// and grub.cfg (GRUB netboot configuration); -cmdline is carried into both
// scripts. Both modes may be combined.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/big-iron/big-iron/machine/boot/image"
)

// Names of the files written by -pxe.
const (
	pxeELF       = "bigiron.elf"
	pxeMultiboot = "bigiron.mb"
	pxeIPXE      = "boot.ipxe"
	pxeGRUB      = "grub.cfg"
)

func main() {
	mb := flag.Bool("multiboot", false, "write a Multiboot 1 image to the -o file")
	out := flag.String("o", "", "output file for -multiboot")
	pxe := flag.String("pxe", "", "write bigiron.elf, bigiron.mb, boot.ipxe and grub.cfg into this directory")
	cmdline := flag.String("cmdline", "", "kernel command line for the iPXE script and GRUB configuration")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mkimage [-multiboot -o FILE] [-pxe DIR [-cmdline ARGS]] ELF\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*mb, *out, *pxe, *cmdline, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(mb bool, out, pxe, cmdline string, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("want exactly one input ELF, got %d arguments", len(args))
	}
	if !mb && pxe == "" {
		return fmt.Errorf("nothing to do: give -multiboot -o FILE and/or -pxe DIR")
	}
	if mb && out == "" {
		return fmt.Errorf("-multiboot needs -o FILE")
	}
	in := args[0]
	elfBytes, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	img, h, err := image.BuildMultiboot(elfBytes)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	fmt.Fprintf(os.Stderr, "mkimage: %s: load %#x-%#x, bss end %#x, entry %#x, %d bytes\n",
		in, h.LoadAddr, h.LoadEndAddr, h.BSSEndAddr, h.EntryAddr, len(img))

	if mb {
		if err := writeFile(out, img); err != nil {
			return err
		}
	}
	if pxe != "" {
		ipxe, err := image.IPXEScript(pxeMultiboot, cmdline)
		if err != nil {
			return err
		}
		grub, err := image.GRUBConfig("/"+pxeMultiboot, cmdline)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(pxe, 0o755); err != nil {
			return err
		}
		for name, b := range map[string][]byte{
			pxeELF:       elfBytes,
			pxeMultiboot: img,
			pxeIPXE:      []byte(ipxe),
			pxeGRUB:      []byte(grub),
		} {
			if err := writeFile(filepath.Join(pxe, name), b); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeFile writes b to name through a temporary file in the same
// directory, so a reader never sees a half-written image.
func writeFile(name string, b []byte) error {
	if dir := filepath.Dir(name); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
