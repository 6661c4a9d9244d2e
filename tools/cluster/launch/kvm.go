// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package launch

import (
	"errors"
	"os"
	"path/filepath"
)

// KVM tells whether QEMU can run the image under KVM on this host, and
// if not, why. The image needs hardware-assisted KVM (the kvm_intel or
// kvm_amd module): /dev/kvm can also be served by a software hypervisor
// such as PVM (kvm_pvm), which runs only guests built for it and stops
// with "KVM internal error. Suberror: 1" (an emulation failure) at the
// image's first SSE instruction. sys is the sysfs root, "/sys" on a host.
func KVM(dev, sys string) error {
	if _, err := os.Stat(dev); err != nil {
		return err
	}
	for _, m := range []string{"kvm_intel", "kvm_amd"} {
		if _, err := os.Stat(filepath.Join(sys, "module", m)); err == nil {
			return nil
		}
	}
	if _, err := os.Stat(filepath.Join(sys, "module", "kvm_pvm")); err == nil {
		return errors.New(dev + " is served by kvm_pvm, a software hypervisor that runs only PVM guests, not hardware KVM")
	}
	return errors.New(dev + " exists but neither kvm_intel nor kvm_amd is loaded")
}

// Accel returns QEMU's accelerator and CPU arguments: KVM with the host's
// CPU when kvm is true, else TCG with every feature it emulates (AMD-V
// with nested paging among them).
func Accel(kvm bool) []string {
	if kvm {
		return []string{"-enable-kvm", "-cpu", "host"}
	}
	return []string{"-cpu", "max"}
}
