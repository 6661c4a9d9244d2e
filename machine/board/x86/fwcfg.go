// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package x86

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/big-iron/big-iron/machine/boot/memmap"
)

// QEMU firmware configuration interface, I/O port access (QEMU
// docs/specs/fw_cfg.rst): a 16-bit selector port and an 8-bit data port.
const (
	fwcfgSelector  = 0x510
	fwcfgData      = 0x511
	fwcfgSignature = 0x0000
	fwcfgFileDir   = 0x0019
	// fwcfgCmdlineSize and fwcfgCmdlineData hold QEMU's -append string
	// (docs/specs/fw_cfg.rst, FW_CFG_CMDLINE_SIZE/DATA).
	fwcfgCmdlineSize = 0x0014
	fwcfgCmdlineData = 0x0015
	fwcfgMaxCmdline  = 4096
	fwcfgDirEntry    = 64 // size u32, select u16, reserved u16, name [56]byte
	fwcfgMaxFiles    = 1024
	e820EntrySize    = 20 // address u64, length u64, type u32
)

func fwcfgRead(sel uint16, n int) []byte {
	Out16(fwcfgSelector, sel)
	b := make([]byte, n)
	for i := range b {
		b[i] = In8(fwcfgData)
	}
	return b
}

// FwCfgE820 reads QEMU's "etc/e820" memory map through fw_cfg: the memory
// map source on QEMU machines whose loader gives none (PVH start info
// version 0, as QEMU microvm's firmware passes).
func FwCfgE820() (memmap.Map, error) {
	if string(fwcfgRead(fwcfgSignature, 4)) != "QEMU" {
		return nil, errors.New("no QEMU fw_cfg interface")
	}
	Out16(fwcfgSelector, fwcfgFileDir)
	var cnt [4]byte
	for i := range cnt {
		cnt[i] = In8(fwcfgData)
	}
	n := binary.BigEndian.Uint32(cnt[:])
	if n > fwcfgMaxFiles {
		return nil, fmt.Errorf("fw_cfg lists %d files", n)
	}
	for i := uint32(0); i < n; i++ {
		var e [fwcfgDirEntry]byte
		for j := range e {
			e[j] = In8(fwcfgData)
		}
		name := e[8:]
		if end := indexByte(name, 0); end >= 0 {
			name = name[:end]
		}
		if string(name) != "etc/e820" {
			continue
		}
		size := binary.BigEndian.Uint32(e[0:])
		if size%e820EntrySize != 0 || size > 4096*e820EntrySize {
			return nil, fmt.Errorf("fw_cfg etc/e820 has bad size %d", size)
		}
		b := fwcfgRead(binary.BigEndian.Uint16(e[4:]), int(size))
		var m memmap.Map
		for k := 0; k+e820EntrySize <= len(b); k += e820EntrySize {
			m = append(m, memmap.Region{
				Start: binary.LittleEndian.Uint64(b[k:]),
				Size:  binary.LittleEndian.Uint64(b[k+8:]),
				Type:  memmap.RegionType(binary.LittleEndian.Uint32(b[k+16:])),
			})
		}
		return m, nil
	}
	return nil, errors.New("fw_cfg has no etc/e820")
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// FwCfgCmdline reads QEMU's kernel command line (-append) through
// fw_cfg: the source on QEMU microvm, whose firmware boots a multiboot
// image without passing it on.
func FwCfgCmdline() (string, error) {
	if string(fwcfgRead(fwcfgSignature, 4)) != "QEMU" {
		return "", errors.New("no QEMU fw_cfg interface")
	}
	size := binary.LittleEndian.Uint32(fwcfgRead(fwcfgCmdlineSize, 4))
	if size == 0 {
		return "", nil
	}
	if size > fwcfgMaxCmdline {
		return "", fmt.Errorf("fw_cfg command line of %d bytes", size)
	}
	b := fwcfgRead(fwcfgCmdlineData, int(size))
	if end := indexByte(b, 0); end >= 0 {
		b = b[:end]
	}
	return string(b), nil
}
