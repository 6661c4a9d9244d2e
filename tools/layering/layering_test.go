// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/machine/boot/cmdline"
	"github.com/big-iron/big-iron/netstack/cluster"
)

// shellPkg is the line interpreter, relative to the module.
const shellPkg = "console/shell"

// pkg is one of the module's packages as go list describes it, with the
// imports of every file that any build of it compiles.
type pkg struct {
	ImportPath     string
	Dir            string
	Module         *struct{ Path string }
	Imports        []string
	TestImports    []string
	XTestImports   []string
	IgnoredGoFiles []string
	Error          *struct{ Err string }

	rel string // path relative to the module: "" for the root
	// all are the imports of its non-test files in every build
	// (tamago's too); tests those of its test files.
	all, tests []string
}

// top is the top-level folder of a package path relative to the module
// ("." for the root).
func top(rel string) string {
	if rel == "" {
		return "."
	}
	t, _, _ := strings.Cut(rel, "/")
	return t
}

// load lists the packages of the module rooted at dir, keyed by path
// relative to the module, with imports relative to it too (others
// dropped).
func load(t *testing.T, dir string) map[string]*pkg {
	t.Helper()
	dirs := goDirs(t, dir)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-e", "-deps", "-json", "./...")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	mod := ""
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Module == nil || p.Dir == "" || !strings.HasPrefix(p.Dir, dir) {
			continue // the standard library or a dependency
		}
		if rel, err := filepath.Rel(dir, p.Dir); err == nil && rel == "." {
			mod = p.ImportPath
		}
		pkgs[p.ImportPath] = p
	}
	if mod == "" {
		if m := firstModule(pkgs); m != "" {
			mod = m
		} else {
			t.Fatal("go list shows no package of the module")
		}
	}
	// ./... leaves out directories whose every file the host build
	// excludes (machine/board/x86, the image's main package): read those
	// directly.
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[p.Dir] = true
	}
	for _, d := range dirs {
		if seen[d] {
			continue
		}
		rel, err := filepath.Rel(dir, d)
		if err != nil {
			t.Fatal(err)
		}
		p := &pkg{ImportPath: mod + "/" + filepath.ToSlash(rel), Dir: d}
		if rel == "." {
			p.ImportPath = mod
		}
		files, _ := filepath.Glob(filepath.Join(d, "*.go"))
		for _, f := range files {
			p.IgnoredGoFiles = append(p.IgnoredGoFiles, filepath.Base(f))
		}
		pkgs[p.ImportPath] = p
	}
	byRel := map[string]*pkg{}
	local := func(imps []string) []string {
		var out []string
		for _, i := range imps {
			if i == mod {
				out = append(out, "")
			} else if r, ok := strings.CutPrefix(i, mod+"/"); ok {
				out = append(out, r)
			}
		}
		return out
	}
	for path, p := range pkgs {
		if path != mod && !strings.HasPrefix(path, mod+"/") {
			continue
		}
		p.rel = strings.TrimPrefix(strings.TrimPrefix(path, mod), "/")
		p.all = local(p.Imports)
		p.tests = local(append(slices.Clone(p.TestImports), p.XTestImports...))
		for _, f := range p.IgnoredGoFiles {
			imps := fileImports(t, filepath.Join(p.Dir, f))
			if strings.HasSuffix(f, "_test.go") {
				p.tests = append(p.tests, local(imps)...)
			} else {
				p.all = append(p.all, local(imps)...)
			}
		}
		byRel[p.rel] = p
	}
	return byRel
}

// firstModule is the module path shared by the packages go list
// reported from the module's own tree.
func firstModule(pkgs map[string]*pkg) string {
	for _, p := range pkgs {
		if p.Module != nil {
			return p.Module.Path
		}
	}
	return ""
}

// goDirs returns the directories under root that hold Go files, leaving
// out testdata, build outputs and hidden directories.
func goDirs(t *testing.T, root string) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "build" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") && name != "go.mod" {
			return nil
		}
		// go test caches a result by the files the test itself opens or
		// stats, not by those go list reads: stat each one, so that an
		// edit runs the test again.
		if _, err := os.Stat(path); err != nil {
			return err
		}
		if dir := filepath.Dir(path); name != "go.mod" && !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// fileImports parses the imports of one file, whatever its build tags.
func fileImports(t *testing.T, file string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []string
	for _, s := range f.Imports {
		p, err := strconv.Unquote(s.Path.Value)
		if err != nil {
			t.Fatalf("%s: import %s: %v", file, s.Path.Value, err)
		}
		out = append(out, p)
	}
	return out
}

// moduleRoot is the directory of go.mod, two up from here.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// folderLoops returns, for each pair of top-level folders A -> B where
// B leads back to A through the non-test imports, a line naming the
// package imports that make the loop.
func folderLoops(pkgs map[string]*pkg) []string {
	type edge struct{ from, to string } // package paths, relative
	// witness[A][B] is a package import from folder A into folder B.
	witness := map[string]map[string]edge{}
	for _, p := range pkgs {
		a := top(p.rel)
		for _, i := range p.all {
			if b := top(i); a != b {
				if witness[a] == nil {
					witness[a] = map[string]edge{}
				}
				if _, ok := witness[a][b]; !ok {
					witness[a][b] = edge{p.rel, i}
				}
			}
		}
	}
	// path returns the folders from b to a, or nil.
	path := func(b, a string) []string {
		prev := map[string]string{b: ""}
		queue := []string{b}
		for len(queue) > 0 {
			f := queue[0]
			queue = queue[1:]
			if f == a {
				var p []string
				for ; f != ""; f = prev[f] {
					p = append([]string{f}, p...)
				}
				return p
			}
			next := make([]string, 0, len(witness[f]))
			for g := range witness[f] {
				next = append(next, g)
			}
			slices.Sort(next)
			for _, g := range next {
				if _, seen := prev[g]; !seen {
					prev[g] = f
					queue = append(queue, g)
				}
			}
		}
		return nil
	}
	var loops []string
	for a, outs := range witness {
		for b := range outs {
			back := path(b, a)
			if back == nil {
				continue
			}
			steps := []string{a}
			for i := 0; i+1 < len(back); i++ {
				w := witness[back[i]][back[i+1]]
				steps = append(steps, w.from+" -> "+w.to)
			}
			w := witness[a][b]
			loops = append(loops, a+" -> "+b+" ("+w.from+" -> "+w.to+"), and back: "+strings.Join(steps[1:], ", "))
		}
	}
	slices.Sort(loops)
	return loops
}

func TestNoFolderLoops(t *testing.T) {
	pkgs := load(t, moduleRoot(t))
	for _, want := range []string{"console", shellPkg, "hyperkernel/hv", "netstack/ipstack", "machine/board"} {
		if pkgs[want] == nil {
			t.Fatalf("go list did not show package %s: the test would see nothing", want)
		}
	}
	for _, l := range folderLoops(pkgs) {
		t.Errorf("folder loop: %s", l)
	}
}

// TestFolderLoopsFound: the loop finder finds a loop.
func TestFolderLoopsFound(t *testing.T) {
	pkgs := map[string]*pkg{
		"board/x86":         {rel: "board/x86", all: []string{"netstack/nic"}},
		"netstack/nic":      {rel: "netstack/nic"},
		"netstack/ipstack":  {rel: "netstack/ipstack", all: []string{"hyperkernel/shell"}},
		"hyperkernel/shell": {rel: "hyperkernel/shell", all: []string{"board"}},
		"board":             {rel: "board"},
		"vmx":               {rel: "vmx"},
	}
	loops := folderLoops(pkgs)
	if len(loops) != 3 || !strings.Contains(loops[0], "board -> netstack (board/x86 -> netstack/nic), and back: netstack/ipstack -> hyperkernel/shell, hyperkernel/shell -> board") {
		t.Errorf("loops:\n%s", strings.Join(loops, "\n"))
	}
	delete(pkgs, "hyperkernel/shell")
	pkgs["netstack/ipstack"].all = nil
	if loops := folderLoops(pkgs); len(loops) != 0 {
		t.Errorf("loops without one: %q", loops)
	}
}

// TestOnlyConsoleImportsShell: the services never import the shell; the
// commands (console) and the image's main package wire it.
func TestOnlyConsoleImportsShell(t *testing.T) {
	pkgs := load(t, moduleRoot(t))
	if pkgs[shellPkg] == nil || pkgs["console"] == nil || !slices.Contains(pkgs["console"].all, shellPkg) {
		t.Fatalf("no package %s imported by console: the test would see nothing", shellPkg)
	}
	for _, p := range pkgs {
		if p.rel == "" || p.rel == "console" || strings.HasPrefix(p.rel, "console/") {
			continue
		}
		if slices.Contains(p.all, shellPkg) || slices.Contains(p.tests, shellPkg) {
			t.Errorf("%s imports %s: only console and main may", p.rel, shellPkg)
		}
	}
}

// TestCmdlineKeyLen: boot/cmdline checks bigiron.key's length without
// importing the cluster transport; the two lengths must agree.
func TestCmdlineKeyLen(t *testing.T) {
	if cmdline.KeyLen != cluster.KeyLen {
		t.Errorf("cmdline.KeyLen = %d, cluster.KeyLen = %d", cmdline.KeyLen, cluster.KeyLen)
	}
}
