// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package tamagodist

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// RuntimeOverlay returns the JSON of a `go build -overlay` file that adds
// the Go files adds (absolute paths) to the runtime package of the
// distribution at root, under their own names. An overlay replaces as
// readily as it adds, so it refuses a name the distribution's runtime
// already has, and anything but an absolute path to a .go file; a root
// not built yet (`go tool tamago` fetches it later) is not checked.
func RuntimeOverlay(root string, adds []string) ([]byte, error) {
	replace := map[string]string{}
	for _, a := range adds {
		if !filepath.IsAbs(a) || !strings.HasSuffix(a, ".go") {
			return nil, fmt.Errorf("runtime overlay: %q is not an absolute path to a .go file", a)
		}
		dst := filepath.Join(root, "src", "runtime", filepath.Base(a))
		if _, err := os.Stat(dst); err == nil {
			return nil, fmt.Errorf("runtime overlay: %s exists in the distribution: an overlay of it would replace it", dst)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("runtime overlay: %w", err)
		}
		if _, dup := replace[dst]; dup {
			return nil, fmt.Errorf("runtime overlay: two files named %s", filepath.Base(a))
		}
		replace[dst] = a
	}
	return json.MarshalIndent(struct{ Replace map[string]string }{replace}, "", "\t")
}

// RuntimeAdds returns the absolute paths of the non-test Go files in dir,
// sorted.
func RuntimeAdds(dir string) ([]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(abs)
	if err != nil {
		return nil, fmt.Errorf("runtime additions: %w", err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			out = append(out, filepath.Join(abs, n))
		}
	}
	sort.Strings(out)
	return out, nil
}
