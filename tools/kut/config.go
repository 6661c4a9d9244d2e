// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout is how long a test may run when unittests.cfg gives it
// no timeout= (scripts/runtime.bash: 90s).
const DefaultTimeout = 90 * time.Second

// Test is one [section] of a unittests.cfg: a test binary and how the
// suite runs it.
type Test struct {
	// Name is the section's name, e.g. "x2apic".
	Name string
	// File is the binary under the arch's folder, e.g. "apic.flat".
	File string
	// SMP is the number of vCPUs when smp= is a plain number (1 when
	// smp= is absent); 0 when smp= is an expression such as $MAX_SMP,
	// which CPUs resolves.
	SMP int
	// SMPExpr is smp= as written ("" when absent).
	SMPExpr string
	// TestArgs is test_args= as written, shell quoting included: the
	// suite passes it to the test as `-append TestArgs` through eval.
	TestArgs string
	// ExtraParams is qemu_params= or its older alias extra_params=: the
	// options QEMU gets besides the suite's own (-cpu, -m, -machine,
	// -device, and, in old files, -append). Multi-line """ values are
	// joined with newlines, backslash-newline removed.
	ExtraParams string
	// KVMToolParams is kvmtool_params=, for kvmtool instead of QEMU.
	KVMToolParams string
	// Arch restricts the test to i386 or x86_64 ("" for both).
	Arch string
	// Machine restricts the test to a machine type ("" for any).
	Machine string
	// Groups are the groups= words (e.g. "vmx", "nodefault").
	Groups []string
	// Accel restricts the test to an accelerator: "kvm", "tcg" or "".
	Accel string
	// Timeout is timeout= (0 when absent: see TimeoutOrDefault).
	Timeout time.Duration
	// Check are the check= items, each "path=value": a host file that
	// must hold the value for the test to run.
	Check []string
	// DisabledIf is disabled_if=, a bash condition.
	DisabledIf string
	// Other holds keys this package does not know, as written.
	Other map[string]string
	// Line is the line of the [section] header, from 1.
	Line int
}

// TimeoutOrDefault is t's timeout, DefaultTimeout when it has none.
func (t Test) TimeoutOrDefault() time.Duration {
	if t.Timeout > 0 {
		return t.Timeout
	}
	return DefaultTimeout
}

// InGroup reports whether t lists group g.
func (t Test) InGroup(g string) bool {
	for _, x := range t.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// CPUs is the number of vCPUs t runs with, smp= resolved with maxSMP
// for $MAX_SMP (the suite takes the host's online CPUs). It knows the
// forms the suite's cfg files use: N, "N,threads=M", $MAX_SMP and
// $((($MAX_SMP < N)?$MAX_SMP:N)).
func (t Test) CPUs(maxSMP int) (int, error) {
	n, err := resolveSMP(t.SMPExpr, maxSMP)
	if err != nil {
		return 0, fmt.Errorf("kut: test %s: %w", t.Name, err)
	}
	return n, nil
}

// smpMin matches $((($MAX_SMP < N)?$MAX_SMP:N)), the suite's "at most N".
var smpMin = regexp.MustCompile(`^\$\(\(\(\$\{?MAX_SMP\}?\s*<\s*(\d+)\)\s*\?\s*\$\{?MAX_SMP\}?\s*:\s*(\d+)\)\)$`)

// resolveSMP evaluates an smp= value.
func resolveSMP(expr string, maxSMP int) (int, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return 1, nil
	}
	if n, ok := plainSMP(expr); ok {
		return n, nil
	}
	if maxSMP < 1 {
		return 0, fmt.Errorf("smp = %s needs MAX_SMP", expr)
	}
	if expr == "$MAX_SMP" || expr == "${MAX_SMP}" {
		return maxSMP, nil
	}
	if m := smpMin.FindStringSubmatch(expr); m != nil && m[1] == m[2] {
		limit, _ := strconv.Atoi(m[1])
		return min(maxSMP, limit), nil
	}
	return 0, fmt.Errorf("smp = %s: expression not understood", expr)
}

// plainSMP reads "N" or "N,key=value...", QEMU's -smp forms that start
// with the CPU count.
func plainSMP(expr string) (int, bool) {
	first, _, _ := strings.Cut(expr, ",")
	n, err := strconv.Atoi(first)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// ParseConfig reads a unittests.cfg: [name] sections of key = value
// lines, # comment lines, and qemu_params = """ values that go on over
// lines until a closing """ (the format of the suite's
// scripts/common.bash and docs/unittests.txt). It returns the tests in
// file order.
func ParseConfig(r io.Reader) ([]Test, error) {
	p := cfgParser{sc: bufio.NewScanner(r), seen: map[string]int{}}
	p.sc.Buffer(make([]byte, 64*1024), 1024*1024)
	if err := p.run(); err != nil {
		return nil, err
	}
	return p.tests, nil
}

// cfgParser is ParseConfig's state: the lines read and the tests so far.
type cfgParser struct {
	sc    *bufio.Scanner
	line  int
	tests []Test
	seen  map[string]int // test name -> line of its section
}

var (
	sectionRE = regexp.MustCompile(`^\[(.*)\]$`)
	keyRE     = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*)$`)
)

// run reads every line.
func (p *cfgParser) run() error {
	for p.sc.Scan() {
		p.line++
		if err := p.handle(strings.TrimSpace(p.sc.Text())); err != nil {
			return fmt.Errorf("kut: unittests.cfg line %d: %w", p.line, err)
		}
	}
	if err := p.sc.Err(); err != nil {
		return fmt.Errorf("kut: reading unittests.cfg: %w", err)
	}
	return p.finish()
}

// handle takes one trimmed line.
func (p *cfgParser) handle(line string) error {
	if line == "" || strings.HasPrefix(line, "#") {
		return nil
	}
	if m := sectionRE.FindStringSubmatch(line); m != nil {
		return p.section(m[1])
	}
	m := keyRE.FindStringSubmatch(line)
	if m == nil {
		return fmt.Errorf("neither [section], key = value nor comment: %q", line)
	}
	if len(p.tests) == 0 {
		return fmt.Errorf("%s = outside a [section]", m[1])
	}
	value := m[2]
	if isParamsKey(m[1]) && strings.HasPrefix(value, `"""`) {
		v, err := p.multiline(strings.TrimPrefix(value, `"""`))
		if err != nil {
			return err
		}
		value = v
	}
	return setKey(&p.tests[len(p.tests)-1], m[1], value)
}

// section starts a new test.
func (p *cfgParser) section(name string) error {
	name = strings.TrimSpace(name)
	if name == "" {
		return errors.New("empty section name")
	}
	if at, dup := p.seen[name]; dup {
		return fmt.Errorf("[%s] again (first at line %d)", name, at)
	}
	p.seen[name] = p.line
	p.tests = append(p.tests, Test{Name: name, SMP: 1, Line: p.line})
	return nil
}

// isParamsKey reports whether key may take a """ multi-line value.
func isParamsKey(key string) bool {
	return key == "qemu_params" || key == "extra_params" || key == "kvmtool_params"
}

// multiline reads a """ value on from first (the rest of its first
// line) to the line ending in """, joining lines with newlines and
// dropping a backslash-newline.
func (p *cfgParser) multiline(first string) (string, error) {
	var b strings.Builder
	cur, start := first, p.line
	for {
		if body, ok := strings.CutSuffix(strings.TrimRight(cur, " \t"), `"""`); ok {
			b.WriteString(body)
			return b.String(), nil
		}
		if trailingBackslashes(cur)%2 == 1 {
			b.WriteString(strings.TrimSuffix(cur, `\`))
		} else {
			b.WriteString(cur + "\n")
		}
		if !p.sc.Scan() {
			return "", fmt.Errorf(`""" opened at line %d is not closed`, start)
		}
		p.line++
		cur = strings.TrimSpace(p.sc.Text())
	}
}

// trailingBackslashes counts the backslashes that end s.
func trailingBackslashes(s string) int {
	return len(s) - len(strings.TrimRight(s, `\`))
}

// setKey stores key = value in t.
func setKey(t *Test, key, value string) error {
	switch key {
	case "file":
		t.File = value
	case "smp":
		t.SMPExpr = value
		t.SMP, _ = plainSMP(value)
	case "test_args":
		t.TestArgs = value
	case "qemu_params", "extra_params":
		t.ExtraParams = value
	case "kvmtool_params":
		t.KVMToolParams = value
	case "arch":
		t.Arch = value
	case "machine":
		t.Machine = value
	case "groups":
		t.Groups = strings.Fields(value)
	case "accel":
		t.Accel = value
	case "check":
		t.Check = strings.Fields(value)
	case "disabled_if":
		t.DisabledIf = value
	case "timeout":
		return setTimeout(t, value)
	default:
		if t.Other == nil {
			t.Other = map[string]string{}
		}
		t.Other[key] = value
	}
	return nil
}

// setTimeout reads timeout = value.
func setTimeout(t *Test, value string) error {
	d, err := ParseTimeout(value)
	if err != nil {
		return fmt.Errorf("test %s: %w", t.Name, err)
	}
	t.Timeout = d
	return nil
}

// ParseTimeout reads a duration as coreutils' timeout(1) takes it, as
// the suite passes timeout= to it: a number, possibly with a fraction,
// and an optional unit s, m, h or d (seconds when none).
func ParseTimeout(s string) (time.Duration, error) {
	num, unit := s, time.Second
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 's':
			num = s[:n-1]
		case 'm':
			num, unit = s[:n-1], time.Minute
		case 'h':
			num, unit = s[:n-1], time.Hour
		case 'd':
			num, unit = s[:n-1], 24*time.Hour
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("timeout %q: not a duration", s)
	}
	return time.Duration(f * float64(unit)), nil
}

// finish checks what the file gave.
func (p *cfgParser) finish() error {
	for _, t := range p.tests {
		if t.File == "" {
			return fmt.Errorf("kut: unittests.cfg line %d: [%s] has no file =", t.Line, t.Name)
		}
	}
	return nil
}
