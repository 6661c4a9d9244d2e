// Command mkguest writes big-iron's test-guest payloads (package
// vmm/testguest) to files: for each variant NAME, NAME.bin (load at
// guest-physical testguest.LoadAddress, start in real mode at CS base 0,
// IP LoadAddress) and NAME.lst (an instruction listing).
//
// Go code does not need the files: testguest.Build assembles an image in
// microseconds. They are for loading the payload by other means, e.g. by
// hand under Bochs, and for reading the code.
//
// Usage:
//
//	go run ./tools/mkguest -o DIR [-variant NAME]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/big-iron/big-iron/vmm/testguest"
)

func main() {
	out := flag.String("o", ".", "output directory")
	only := flag.String("variant", "", "write only this variant (standard, triplefault, probe)")
	flag.Parse()
	if err := run(*out, *only); err != nil {
		fmt.Fprintln(os.Stderr, "mkguest:", err)
		os.Exit(1)
	}
}

func run(dir, only string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	found := false
	for _, v := range testguest.Variants() {
		if only != "" && v.String() != only {
			continue
		}
		found = true
		im, err := testguest.Build(v)
		if err != nil {
			return err
		}
		bin := filepath.Join(dir, v.String()+".bin")
		if err := os.WriteFile(bin, im.Bytes, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", bin, err)
		}
		lst := filepath.Join(dir, v.String()+".lst")
		if err := os.WriteFile(lst, []byte(im.Listing()), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", lst, err)
		}
		fmt.Printf("%s: %d bytes (load at %#x)\n", bin, len(im.Bytes), testguest.LoadAddress)
	}
	if !found {
		return fmt.Errorf("no variant named %q", only)
	}
	return nil
}
