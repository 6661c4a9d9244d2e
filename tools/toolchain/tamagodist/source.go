// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package tamagodist

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/ulikunitz/xz"
)

// VerifySum checks archive against the sha256 sum in archive+".sha256"
// (sha256sum's format) when that file exists. It returns nil when there is
// no sum file to check against.
func VerifySum(archive string) error {
	b, err := os.ReadFile(archive + ".sha256")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the archive's sum: %w", err)
	}
	want, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("reading %s: %w", archive, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(want) {
		return fmt.Errorf("%s: sha256 %s, but %s.sha256 says %s: a damaged or different archive", archive, got, archive, want)
	}
	return nil
}

// Unpack extracts a .tar.xz (or plain .tar) of the distribution's source
// tree, whose every entry must lie under the top folder tag/, into dir:
// tag/x lands in dir/x. An entry outside tag/ (a different release, or a
// tree archived without its prefix) stops it with an error naming it.
func Unpack(archive, tag, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	if strings.HasSuffix(archive, ".xz") {
		if r, err = xz.NewReader(r); err != nil {
			return fmt.Errorf("%s: not an xz archive: %w", archive, err)
		}
	}
	tr := tar.NewReader(r)
	prefix := tag + "/"
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", archive, err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue // git archive's commit id
		}
		name := path.Clean(h.Name)
		if name == tag {
			continue
		}
		if !strings.HasPrefix(name, prefix) {
			return fmt.Errorf("%s: entry %q is not under %s: not the source of %s (make it with git archive --prefix=%s)", archive, h.Name, prefix, tag, prefix)
		}
		if err := extract(tr, h, filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(name, prefix)))); err != nil {
			return fmt.Errorf("%s: %w", archive, err)
		}
	}
}

// extract writes one tar entry to dst.
func extract(r io.Reader, h *tar.Header, dst string) error {
	switch h.Typeflag {
	case tar.TypeDir:
		return os.MkdirAll(dst, 0o755)
	case tar.TypeReg:
		return writeFile(dst, r, fs.FileMode(h.Mode)&0o777)
	case tar.TypeSymlink:
		if filepath.IsAbs(h.Linkname) || strings.HasPrefix(path.Clean(h.Linkname), "../") {
			return fmt.Errorf("entry %q: symbolic link out of the tree (%s)", h.Name, h.Linkname)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.Symlink(h.Linkname, dst)
	default:
		return fmt.Errorf("entry %q: unexpected type %q", h.Name, h.Typeflag)
	}
}

// writeFile creates dst with mode and the contents of r.
func writeFile(dst string, r io.Reader, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode|0o200)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	return f.Close()
}

// CopyTree copies a checkout of the distribution at src into dir, leaving
// out its .git folder and anything a previous build wrote (bin, pkg).
func CopyTree(src, dir string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == ".git" || rel == "bin" || rel == "pkg" {
			return filepath.SkipDir
		}
		dst := filepath.Join(dir, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return writeFile(dst, f, fi.Mode().Perm())
		default:
			return fmt.Errorf("%s: not a file, folder or link", p)
		}
	})
}
