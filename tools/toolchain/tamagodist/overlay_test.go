// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package tamagodist

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRuntimeOverlay(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "src", "runtime"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "src", "runtime", "proc.go"), []byte("package runtime\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	adds := t.TempDir()
	for _, n := range []string{"b_tamago.go", "a_tamago.go", "a_test.go", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(adds, n), []byte("package runtime\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := RuntimeAdds(adds)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || filepath.Base(files[0]) != "a_tamago.go" || filepath.Base(files[1]) != "b_tamago.go" {
		t.Fatalf("RuntimeAdds = %q, want a_tamago.go and b_tamago.go", files)
	}
	js, err := RuntimeOverlay(root, files)
	if err != nil {
		t.Fatal(err)
	}
	var o struct{ Replace map[string]string }
	if err := json.Unmarshal(js, &o); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	want := filepath.Join(root, "src", "runtime", "a_tamago.go")
	if o.Replace[want] != files[0] || len(o.Replace) != 2 {
		t.Errorf("overlay %v, want %s -> %s among 2", o.Replace, want, files[0])
	}

	// Adding must never replace: a file the distribution has is refused.
	clash := filepath.Join(adds, "proc.go")
	if err := os.WriteFile(clash, []byte("package runtime\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := RuntimeOverlay(root, []string{clash}); err == nil || !strings.Contains(err.Error(), "would replace") {
		t.Errorf("overlay of proc.go: %v, want a refusal", err)
	}
	if _, err := RuntimeOverlay(root, []string{"rel/x.go"}); err == nil {
		t.Error("a relative path was accepted")
	}
	// A distribution not fetched yet is not checked.
	if _, err := RuntimeOverlay(filepath.Join(root, "absent"), files); err != nil {
		t.Errorf("overlay for a distribution not built yet: %v", err)
	}
}
