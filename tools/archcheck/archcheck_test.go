// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package archcheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// maxFuncLines is the longest a function of the image may be, from its
// func keyword to its closing brace (issue 17).
const maxFuncLines = 100

// checkedFolders are the folders of the code that runs in the image (and
// its simulator): the machine, the VMM, the network, the cluster, the
// hypervisor service and the console.
var checkedFolders = []string{"machine", "vmm", "netstack", "cluster", "hyperkernel", "console", "sim"}

// longFuncsAllowed lists, as "file:function" (file relative to the
// repository, methods as Type.Method, e.g.
// "hyperkernel/hv/hv_tamago.go:Hypervisor.RunTest"), the functions in
// checkedFolders known to be longer than maxFuncLines while they are
// being split.
//
// This list may only shrink: never add to it. Split a function that
// grows too long instead, and remove an entry once its function fits
// (the test fails while an entry names a function that is no longer too
// long, or no longer exists).
var longFuncsAllowed = []string{}

// funcLen is one function declaration and its length in lines.
type funcLen struct {
	file  string // relative to the repository, with forward slashes
	line  int    // of the func keyword
	name  string // Name, or Type.Name for a method
	lines int    // from the func keyword to the closing brace
}

func (f funcLen) key() string { return f.file + ":" + f.name }

// repoRoot is the repository this test belongs to: two levels up from
// the test's directory, where go.mod names the module.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatalf("no go.mod two levels above the test: %v", err)
	}
	if !strings.Contains(string(mod), "module github.com/big-iron/big-iron\n") {
		t.Fatalf("%s/go.mod is not big-iron's", root)
	}
	return root
}

// funcName is d's name, qualified by its receiver's type for a method.
func funcName(d *ast.FuncDecl) string {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return d.Name.Name
	}
	typ := d.Recv.List[0].Type
	for {
		switch x := typ.(type) {
		case *ast.StarExpr:
			typ = x.X
			continue
		case *ast.IndexExpr: // generic receiver T[P]
			typ = x.X
			continue
		case *ast.IndexListExpr: // generic receiver T[P, Q]
			typ = x.X
			continue
		case *ast.ParenExpr:
			typ = x.X
			continue
		case *ast.Ident:
			return x.Name + "." + d.Name.Name
		}
		return d.Name.Name
	}
}

// funcLengths parses every non-test Go file under dir (relative to root),
// whatever its build constraints, and returns its function declarations
// with their lengths.
func funcLengths(t *testing.T, root, dir string) []funcLen {
	t.Helper()
	var out []funcLen
	fset := token.NewFileSet()
	err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if name == "testdata" || path != filepath.Join(root, dir) && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			start, end := fset.Position(fd.Pos()).Line, fset.Position(fd.End()).Line
			out = append(out, funcLen{file: filepath.ToSlash(rel), line: start, name: funcName(fd), lines: end - start + 1})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNoLongFunctions fails, listing file:line name length, for every
// function in checkedFolders (test files excluded) longer than
// maxFuncLines that longFuncsAllowed does not list, and for every entry
// of longFuncsAllowed that no longer names such a function.
func TestNoLongFunctions(t *testing.T) {
	root := repoRoot(t)
	var funcs []funcLen
	for _, dir := range checkedFolders {
		f := funcLengths(t, root, dir)
		if len(f) == 0 {
			t.Fatalf("no functions found under %s/", dir)
		}
		funcs = append(funcs, f...)
	}
	allowed := map[string]bool{}
	for _, k := range longFuncsAllowed {
		allowed[k] = true
	}
	var long []string
	stillLong := map[string]bool{}
	for _, f := range funcs {
		if f.lines <= maxFuncLines {
			continue
		}
		if allowed[f.key()] {
			stillLong[f.key()] = true
			continue
		}
		long = append(long, fmt.Sprintf("%s:%d %s %d", f.file, f.line, f.name, f.lines))
	}
	sort.Strings(long)
	if len(long) > 0 {
		t.Errorf("%d functions over %d lines (split them; do not add them to longFuncsAllowed):\n\t%s",
			len(long), maxFuncLines, strings.Join(long, "\n\t"))
	}
	for _, k := range longFuncsAllowed {
		if !stillLong[k] {
			t.Errorf("longFuncsAllowed lists %s, which is not a function over %d lines (any more): remove the entry", k, maxFuncLines)
		}
	}
}
