// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"fmt"
	"io"

	"github.com/big-iron/big-iron/console/shell"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// VMXCommand returns `vmx`, which prints the BSP's VMX capabilities in
// words, read through readMSR.
func VMXCommand(readMSR func(uint32) (uint64, error), vmxCapable bool, reason string) *shell.Command {
	return &shell.Command{
		Name: "vmx",
		Help: "VT-x capabilities of this CPU, in words",
		Run: func(w io.Writer, args []string) error {
			if len(args) != 0 {
				return fmt.Errorf("%w: vmx takes no arguments", shell.ErrUsage)
			}
			if !vmxCapable {
				fmt.Fprintf(w, "VMX not available: %s\n", reason)
				return nil
			}
			caps, err := vmx.ReadCapabilities(vmx.MSRReader(readMSR))
			if err != nil {
				return fmt.Errorf("reading capability MSRs: %w", err)
			}
			fmt.Fprint(w, caps.String())
			return nil
		},
	}
}
