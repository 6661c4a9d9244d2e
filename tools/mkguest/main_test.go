package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/big-iron/big-iron/vmm/testguest"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	if err := run(dir, ""); err != nil {
		t.Fatal(err)
	}
	for _, v := range testguest.Variants() {
		b, err := os.ReadFile(filepath.Join(dir, v.String()+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		im, err := testguest.Build(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, im.Bytes) {
			t.Errorf("%v: file differs from Build", v)
		}
		if st, err := os.Stat(filepath.Join(dir, v.String()+".lst")); err != nil || st.Size() == 0 {
			t.Errorf("%v: listing missing: %v", v, err)
		}
	}
	if err := run(dir, "nosuch"); err == nil {
		t.Error("unknown variant accepted")
	}
}
