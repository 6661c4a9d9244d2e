// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package main

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// startKernelMap is where x86-64 Linux maps its image (__START_KERNEL_map):
// a symbol of the kernel image at virtual address va lies at physical
// va - startKernelMap when the kernel is not relocated (nokaslr, as
// big-iron boots it).
const startKernelMap = 0xffffffff80000000

// symbol is one System.map line.
type symbol struct {
	addr uint64
	name string
}

// symbols is a System.map, by address.
type symbols []symbol

// readSystemMap reads a System.map: "ADDRESS TYPE NAME" lines.
func readSystemMap(r io.Reader) (symbols, error) {
	var s symbols
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		a, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("System.map line %d: %q: %v", line, sc.Text(), err)
		}
		s = append(s, symbol{a, f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(s, func(i, j int) bool { return s[i].addr < s[j].addr })
	return s, nil
}

// page names the kernel symbols in the guest-physical page at gpa: the
// symbol the page starts in and the first few that start inside it.
func (s symbols) page(gpa uint64) string {
	if len(s) == 0 {
		return ""
	}
	va := gpa&^0xfff + startKernelMap
	i := sort.Search(len(s), func(i int) bool { return s[i].addr > va }) // first after the page start
	var names []string
	if i > 0 && s[i-1].addr >= startKernelMap {
		names = append(names, s[i-1].name)
	}
	for ; i < len(s) && s[i].addr < va+4096 && len(names) < 4; i++ {
		names = append(names, s[i].name)
	}
	return strings.Join(names, " ")
}
