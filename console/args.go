// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/big-iron/big-iron/console/shell"
)

// Args declares the key=value arguments of a command and parses them: the
// one argument syntax of every command, e.g.
//
//	vm boot linux vcpus=2 mem=512M cmdline="console=ttyS0 quiet"
//	node leave force
//
// Each declaration names a key and where its value goes; a value the
// variable already holds is the default. Sizes take K, M and G (binary
// multiples), numbers a range, flags stand alone (force) or take on/off.
// Every error wraps shell.ErrUsage, so the shell prints the command's
// usage with it.
type Args struct {
	keys  []*argKey
	given map[string]bool
}

type argKey struct {
	name string
	set  func(v string) error
	// flag keys may stand alone: the bare word sets them.
	flag bool
}

func (a *Args) add(name string, flag bool, set func(string) error) {
	a.keys = append(a.keys, &argKey{name: name, set: set, flag: flag})
}

// Int declares key name=N with N from lo to hi.
func (a *Args) Int(name string, p *int, lo, hi int) {
	a.add(name, false, func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			if hi == math.MaxInt {
				return fmt.Errorf("want a number from %d up", lo)
			}
			return fmt.Errorf("want a number from %d to %d", lo, hi)
		}
		*p = n
		return nil
	})
}

// Size declares key name=SIZE: bytes, or a number with K, M or G.
func (a *Args) Size(name string, p *uint64) {
	a.add(name, false, func(v string) error {
		n, err := parseSize(v)
		if err != nil {
			return err
		}
		*p = n
		return nil
	})
}

// String declares key name=TEXT, any text (the empty one too).
func (a *Args) String(name string, p *string) {
	a.add(name, false, func(v string) error {
		*p = v
		return nil
	})
}

// Flag declares a yes/no key: the bare word name sets it, name=on (or
// yes, true, 1) and name=off (no, false, 0) say which.
func (a *Args) Flag(name string, p *bool) {
	a.add(name, true, func(v string) error {
		switch v {
		case "on", "yes", "true", "1":
			*p = true
		case "off", "no", "false", "0":
			*p = false
		default:
			return fmt.Errorf("want on or off")
		}
		return nil
	})
}

// Choice declares key name=WORD with WORD one of choices.
func (a *Args) Choice(name string, p *string, choices ...string) {
	a.add(name, false, func(v string) error {
		if !slices.Contains(choices, v) {
			return fmt.Errorf("want %s", orList(choices))
		}
		*p = v
		return nil
	})
}

// Func declares key name=VALUE whose value set reads; its error says what
// the key wants.
func (a *Args) Func(name string, set func(v string) error) {
	a.add(name, false, set)
}

// Given reports whether the last Parse saw key name.
func (a *Args) Given(name string) bool { return a.given[name] }

// Parse reads words, each key=value or a flag's name.
func (a *Args) Parse(words []string) error {
	_, err := a.parse(words, false)
	return err
}

// ParseMixed reads words like Parse but returns the words that are
// neither key=value nor a flag (IDs, names), in order, for the command to
// read.
func (a *Args) ParseMixed(words []string) ([]string, error) {
	return a.parse(words, true)
}

func (a *Args) parse(words []string, mixed bool) ([]string, error) {
	a.given = make(map[string]bool, len(words))
	var rest []string
	for _, w := range words {
		k, v, hasValue := strings.Cut(w, "=")
		key := a.key(k)
		switch {
		case !hasValue && key != nil && key.flag:
			v = "on"
		case !hasValue && mixed:
			rest = append(rest, w)
			continue
		case !hasValue || k == "":
			return nil, fmt.Errorf("%w: %q is not key=value", shell.ErrUsage, w)
		case key == nil:
			return nil, fmt.Errorf("%w: unknown key %q (known: %s)", shell.ErrUsage, k, strings.Join(a.names(), ", "))
		}
		if a.given[k] {
			return nil, fmt.Errorf("%w: %q given twice", shell.ErrUsage, k)
		}
		a.given[k] = true
		if err := key.set(v); err != nil {
			return nil, fmt.Errorf("%w: %s=%q: %v", shell.ErrUsage, k, v, err)
		}
	}
	return rest, nil
}

func (a *Args) key(name string) *argKey {
	for _, k := range a.keys {
		if k.name == name {
			return k
		}
	}
	return nil
}

func (a *Args) names() []string {
	n := make([]string, len(a.keys))
	for i, k := range a.keys {
		n[i] = k.name
	}
	return n
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// maxSize bounds sizes: 1 TiB.
const maxSize = 1 << 40

// parseSize reads a memory size: bytes, or a number with K, M or G
// (binary multiples), e.g. "128M"; at least one byte, at most maxSize.
func parseSize(s string) (uint64, error) {
	mult, n := uint64(1), s
	switch {
	case strings.HasSuffix(s, "K"):
		mult, n = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, n = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, n = 1<<30, strings.TrimSuffix(s, "G")
	}
	v, err := strconv.ParseUint(n, 10, 64)
	if err != nil || v == 0 || v > maxSize/mult {
		return 0, fmt.Errorf("want a number of bytes, or with K, M or G (at most 1024G)")
	}
	return v * mult, nil
}
