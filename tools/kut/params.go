// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrExpansion is returned for a value that needs the shell to expand it
// ($VAR, $(...) or backticks): the suite evals its command lines, this
// package does not run a shell.
var ErrExpansion = errors.New("needs shell expansion")

// SplitWords splits s into words as a POSIX shell does when it performs
// no expansion: blanks and newlines separate words, '...' keeps its text
// as is, "..." keeps its text but for backslash before $ ` " \ or a
// newline, and a backslash outside quotes keeps the next character. It
// fails with ErrExpansion on $VAR, ${...}, $(...) or backticks outside
// single quotes, and on an unclosed quote.
func SplitWords(s string) ([]string, error) {
	w := wordSplitter{src: s}
	if err := w.run(); err != nil {
		return nil, fmt.Errorf("kut: splitting %q: %w", s, err)
	}
	return w.words, nil
}

// wordSplitter is SplitWords' state.
type wordSplitter struct {
	src    string
	i      int
	cur    strings.Builder
	inWord bool
	words  []string
}

// run splits all of src.
func (w *wordSplitter) run() error {
	for w.i < len(w.src) {
		if err := w.step(); err != nil {
			return err
		}
	}
	w.endWord()
	return nil
}

// step takes the character at w.i and what it opens.
func (w *wordSplitter) step() error {
	c := w.src[w.i]
	w.i++
	switch {
	case c == ' ' || c == '\t' || c == '\n':
		w.endWord()
	case c == '\'':
		return w.single()
	case c == '"':
		return w.double()
	case c == '\\':
		w.escaped(false)
	case c == '`' || (c == '$' && w.expands()):
		return ErrExpansion
	default:
		w.add(c)
	}
	return nil
}

// add appends c to the current word.
func (w *wordSplitter) add(c byte) {
	w.cur.WriteByte(c)
	w.inWord = true
}

// endWord closes the current word, if any.
func (w *wordSplitter) endWord() {
	if w.inWord {
		w.words = append(w.words, w.cur.String())
	}
	w.cur.Reset()
	w.inWord = false
}

// expands reports whether the $ just read starts an expansion.
func (w *wordSplitter) expands() bool {
	if w.i >= len(w.src) {
		return false
	}
	c := w.src[w.i]
	return c == '{' || c == '(' || c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || strings.IndexByte("@*#?-$!", c) >= 0
}

// single reads a '...' string, the opening quote already read.
func (w *wordSplitter) single() error {
	end := strings.IndexByte(w.src[w.i:], '\'')
	if end < 0 {
		return errors.New("unclosed '")
	}
	w.cur.WriteString(w.src[w.i : w.i+end])
	w.inWord = true
	w.i += end + 1
	return nil
}

// double reads a "..." string, the opening quote already read.
func (w *wordSplitter) double() error {
	w.inWord = true
	for w.i < len(w.src) {
		c := w.src[w.i]
		w.i++
		switch {
		case c == '"':
			return nil
		case c == '\\':
			w.escaped(true)
		case c == '`' || (c == '$' && w.expands()):
			return ErrExpansion
		default:
			w.add(c)
		}
	}
	return errors.New(`unclosed "`)
}

// escaped takes the character after a backslash: inside double quotes
// only $ ` " \ and newline are escaped, the backslash stays before
// others; a backslash-newline joins lines.
func (w *wordSplitter) escaped(quoted bool) {
	if w.i >= len(w.src) {
		w.add('\\')
		return
	}
	c := w.src[w.i]
	w.i++
	switch {
	case c == '\n':
	case quoted && strings.IndexByte("$`\"\\", c) < 0:
		w.add('\\')
		w.add(c)
	default:
		w.add(c)
	}
}

// QEMUOpts are the QEMU options of a test's qemu_params (extra_params).
type QEMUOpts struct {
	// CPU is the -cpu value: a model and its properties, e.g.
	// "qemu64,+x2apic,+tsc-deadline" ("" when absent).
	CPU string
	// Mem is the -m value as written ("" when absent); see MemMiB.
	Mem string
	// SMP is the -smp value as written ("" when absent).
	SMP string
	// Machine are the -machine and -M values, e.g. "pit=off".
	Machine []string
	// Accel are the -accel values.
	Accel []string
	// Devices are the -device values, e.g. "pc-testdev".
	Devices []string
	// Append is the -append value: the guest's command line in old cfg
	// files, where test_args did not exist yet.
	Append string
	// HasAppend reports whether -append was given.
	HasAppend bool
	// EnableKVM reports -enable-kvm.
	EnableKVM bool
	// Other are the other options, each with its value if it takes one.
	Other [][]string
}

// isFlagOpt reports whether QEMU option name takes no value.
func isFlagOpt(name string) bool {
	switch name {
	case "enable-kvm", "nodefaults", "no-reboot", "no-shutdown", "S", "nographic", "no-hpet", "no-acpi":
		return true
	}
	return false
}

// ParseQEMUParams splits a qemu_params value into QEMU's options.
func ParseQEMUParams(s string) (QEMUOpts, error) {
	var o QEMUOpts
	words, err := SplitWords(s)
	if err != nil {
		return o, err
	}
	for i := 0; i < len(words); i++ {
		name, ok := optName(words[i])
		if !ok {
			return o, fmt.Errorf("kut: qemu params %q: %q is not an option", s, words[i])
		}
		if isFlagOpt(name) {
			o.setFlag(name)
			continue
		}
		if i+1 >= len(words) {
			return o, fmt.Errorf("kut: qemu params %q: -%s has no value", s, name)
		}
		i++
		o.set(name, words[i])
	}
	return o, nil
}

// optName strips an option's one or two dashes.
func optName(w string) (string, bool) {
	if !strings.HasPrefix(w, "-") || w == "-" || w == "--" {
		return "", false
	}
	return strings.TrimPrefix(strings.TrimPrefix(w, "-"), "-"), true
}

// setFlag records a valueless option.
func (o *QEMUOpts) setFlag(name string) {
	if name == "enable-kvm" {
		o.EnableKVM = true
		return
	}
	o.Other = append(o.Other, []string{"-" + name})
}

// set records an option and its value.
func (o *QEMUOpts) set(name, v string) {
	switch name {
	case "cpu":
		o.CPU = v
	case "m":
		o.Mem = v
	case "smp":
		o.SMP = v
	case "machine", "M":
		o.Machine = append(o.Machine, v)
	case "accel":
		o.Accel = append(o.Accel, v)
	case "device":
		o.Devices = append(o.Devices, v)
	case "append":
		o.Append, o.HasAppend = v, true
	default:
		o.Other = append(o.Other, []string{"-" + name, v})
	}
}

// MemMiB is -m in MiB (QEMU's unit when none is given), 0 when absent.
// It takes the forms "2048", "4g", "512M" and "size=4G,...".
func (o QEMUOpts) MemMiB() (int, error) {
	v := o.Mem
	if v == "" {
		return 0, nil
	}
	if rest, ok := strings.CutPrefix(v, "size="); ok {
		v = rest
	}
	v, _, _ = strings.Cut(v, ",")
	n, err := parseSizeMiB(v)
	if err != nil {
		return 0, fmt.Errorf("kut: -m %s: %w", o.Mem, err)
	}
	return n, nil
}

// parseSizeMiB reads a QEMU size with an optional unit, MiB by default.
func parseSizeMiB(v string) (int, error) {
	mul := 1.0
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'k', 'K':
			mul, v = 1.0/1024, v[:n-1]
		case 'm', 'M':
			v = v[:n-1]
		case 'g', 'G':
			mul, v = 1024, v[:n-1]
		case 't', 'T':
			mul, v = 1024*1024, v[:n-1]
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		return 0, errors.New("not a size")
	}
	return int(f * mul), nil
}

// Options are t's QEMU options (qemu_params / extra_params).
func Options(t Test) (QEMUOpts, error) {
	o, err := ParseQEMUParams(t.ExtraParams)
	if err != nil {
		return o, fmt.Errorf("kut: test %s: %w", t.Name, err)
	}
	return o, nil
}

// Args is the command line t's binary gets (what the suite passes with
// QEMU's -append): test_args unquoted, or, in old cfg files, the -append
// of extra_params (which wins when both are there, as the later -append
// does for QEMU). It is "" when the test takes no arguments.
func Args(t Test) (string, error) {
	o, err := Options(t)
	if err != nil {
		return "", err
	}
	if o.HasAppend {
		return o.Append, nil
	}
	words, err := SplitWords(t.TestArgs)
	if err != nil {
		return "", fmt.Errorf("kut: test %s: test_args: %w", t.Name, err)
	}
	return strings.Join(words, " "), nil
}

// CPUFlags is the -cpu value t's params ask for: a CPU model and its
// properties such as "qemu64,+x2apic,+tsc-deadline" or
// "max,vendor=GenuineIntel"; "" when the test names none.
func CPUFlags(t Test) (string, error) {
	o, err := Options(t)
	if err != nil {
		return "", err
	}
	return o.CPU, nil
}
