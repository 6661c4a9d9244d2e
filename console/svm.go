// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"fmt"
	"io"

	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/vmm/svm"
)

// SVMCommand returns `svm`, which prints the BSP's AMD-V capabilities in
// words, read through cpuid and readMSR (VM_CR is read only where CPUID
// reports SVM, so the command is safe on Intel CPUs).
func SVMCommand(cpuid func(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32), readMSR func(uint32) (uint64, error)) *shell.Command {
	return &shell.Command{
		Name: "svm",
		Help: "AMD-V (SVM) capabilities of this CPU, in words",
		Run: func(w io.Writer, args []string) error {
			if len(args) != 0 {
				return fmt.Errorf("%w: svm takes no arguments", shell.ErrUsage)
			}
			if cpuid == nil {
				fmt.Fprintln(w, "SVM not available: this board offers no CPUID")
				return nil
			}
			caps := svm.ReadCapabilities(svm.CPUIDFunc(cpuid), svm.MSRReader(readMSR))
			fmt.Fprint(w, caps.Describe())
			return nil
		},
	}
}
