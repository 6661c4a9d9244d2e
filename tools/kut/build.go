// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package kut

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/ulikunitz/xz"
)

// StampFile is the file in the cache folder that records, once a build
// has succeeded, the archive's sha256 and the folder it unpacked to.
const StampFile = "bigiron-kut.stamp"

// tailLines is how many lines of a failed command's output an error
// quotes.
const tailLines = 25

// Build unpacks archive (a .tar.xz of the suite with one top folder)
// into cacheDir, runs ./configure and make -j2 in that folder and
// returns its path. When cacheDir holds a complete build of the same
// archive (its stamp names the archive's sha256) it returns at once. A
// build that fails leaves no stamp, so the next call starts again. The
// folder must stay where it is built: configure records its absolute
// path. Calls for the same cacheDir must not overlap.
func Build(archive, cacheDir string) (string, error) {
	sum, err := fileSHA256(archive)
	if err != nil {
		return "", err
	}
	if dir, ok := cachedBuild(cacheDir, sum); ok {
		return dir, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("kut: cache folder: %w", err)
	}
	if err := os.Remove(filepath.Join(cacheDir, StampFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("kut: removing old stamp: %w", err)
	}
	top, err := Unpack(archive, cacheDir)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cacheDir, top)
	if err := runBuild(dir); err != nil {
		return "", err
	}
	return dir, writeStamp(cacheDir, sum, top)
}

// fileSHA256 is the hex sha256 of a file's contents.
func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("kut: archive: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("kut: reading %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cachedBuild is the folder of a finished build of the archive whose
// sha256 is sum, if cacheDir's stamp records one that is still there.
func cachedBuild(cacheDir, sum string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(cacheDir, StampFile))
	if err != nil {
		return "", false
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 || fields[0] != sum || !validTop(fields[1]) {
		return "", false
	}
	dir := filepath.Join(cacheDir, fields[1])
	if _, err := os.Stat(filepath.Join(dir, "config.mak")); err != nil {
		return "", false
	}
	return dir, true
}

// writeStamp records a finished build.
func writeStamp(cacheDir, sum, top string) error {
	name := filepath.Join(cacheDir, StampFile)
	if err := os.WriteFile(name, []byte(sum+" "+top+"\n"), 0o644); err != nil {
		return fmt.Errorf("kut: writing stamp: %w", err)
	}
	return nil
}

// runBuild configures and builds the suite in dir.
func runBuild(dir string) error {
	if err := runLogged(dir, "./configure"); err != nil {
		return err
	}
	return runLogged(dir, "make", "-j2")
}

// runLogged runs a command in dir and, when it fails, returns an error
// that names it and quotes the tail of its output.
func runLogged(dir string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		line := strings.Join(append([]string{name}, args...), " ")
		return fmt.Errorf("kut: %s in %s: %w; its last output:\n%s", line, dir, err, tail(out.Bytes(), tailLines))
	}
	return nil
}

// tail is the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Unpack extracts a .tar.xz whose entries all lie under one top folder
// into dir, after removing any earlier copy of that folder, and returns
// the folder's name. It writes only regular files, folders and symbolic
// links that stay inside the folder, and refuses anything else.
func Unpack(archive, dir string) (string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return "", fmt.Errorf("kut: archive: %w", err)
	}
	defer f.Close()
	zr, err := xz.NewReader(bufio.NewReader(f))
	if err != nil {
		return "", fmt.Errorf("kut: %s: %w", archive, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("kut: unpacking: %w", err)
	}
	defer root.Close()
	u := unpacker{root: root}
	if err := u.run(tar.NewReader(zr)); err != nil {
		return "", fmt.Errorf("kut: unpacking %s: %w", archive, err)
	}
	if u.top == "" {
		return "", fmt.Errorf("kut: unpacking %s: no files", archive)
	}
	return u.top, nil
}

// unpacker is Unpack's state: where it writes and the top folder.
type unpacker struct {
	root *os.Root
	top  string
}

// run writes every entry of tr.
func (u *unpacker) run(tr *tar.Reader) error {
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if err := u.entry(h, tr); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
}

// entry writes one entry, its contents read from r.
func (u *unpacker) entry(h *tar.Header, r io.Reader) error {
	name, err := u.place(h.Name)
	if err != nil {
		return err
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return u.root.MkdirAll(name, 0o755)
	case tar.TypeReg:
		return u.file(name, h.FileInfo().Mode().Perm(), r)
	case tar.TypeSymlink:
		return u.symlink(name, h.Linkname)
	}
	return fmt.Errorf("entry type %q not supported", h.Typeflag)
}

// place checks an entry's name, takes the top folder from the first
// one (removing an earlier copy of it) and returns the cleaned name.
func (u *unpacker) place(name string) (string, error) {
	clean := path.Clean(name)
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", errors.New("outside the archive's folder")
	}
	top, _, _ := strings.Cut(clean, "/")
	if u.top == "" {
		if !validTop(top) {
			return "", fmt.Errorf("top folder %q", top)
		}
		if err := u.root.RemoveAll(top); err != nil {
			return "", fmt.Errorf("removing the earlier copy: %w", err)
		}
		u.top = top
	}
	if top != u.top {
		return "", fmt.Errorf("not under the top folder %s", u.top)
	}
	return clean, nil
}

// validTop reports whether s can be the archive's top folder.
func validTop(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`) && s != StampFile
}

// file writes a regular file with its permission bits.
func (u *unpacker) file(name string, perm fs.FileMode, r io.Reader) error {
	if err := u.root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := u.root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// symlink makes a relative link that stays inside the top folder.
func (u *unpacker) symlink(name, target string) error {
	resolved := path.Join(path.Dir(name), target)
	if path.IsAbs(target) || !strings.HasPrefix(resolved+"/", u.top+"/") {
		return fmt.Errorf("link to %s leaves the archive's folder", target)
	}
	if err := u.root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	return u.root.Symlink(target, name)
}
