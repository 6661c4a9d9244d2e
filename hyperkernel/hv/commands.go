// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package hv

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/big-iron/big-iron/hyperkernel/exits"
	"github.com/big-iron/big-iron/hyperkernel/shell"
	"github.com/big-iron/big-iron/hyperkernel/testguest"
)

// Runner is what the vm commands drive: the Hypervisor on bare metal.
type Runner interface {
	RunTest(testguest.Variant) (*Result, error)
	Stats() (exits.ExitStats, int)
}

// Commands returns `vm`: `vm run test [VARIANT] [cores=all]` and `vm stat`.
// r is nil where VMX is unavailable; the command then says why.
func Commands(r Runner, unavailable string) []*shell.Command {
	return []*shell.Command{{
		Name:  "vm",
		Usage: "run test [standard|triplefault|probe] [cores=all] | stat",
		Help:  "run the built-in test guest; show VM exits by reason",
		Run: func(w io.Writer, args []string) error {
			if r == nil {
				return fmt.Errorf("VMX unavailable: %s", unavailable)
			}
			switch {
			case len(args) >= 2 && args[0] == "run" && args[1] == "test":
				return runTest(w, r, args[2:])
			case len(args) == 1 && args[0] == "stat":
				st, runs := r.Stats()
				fmt.Fprintf(w, "%d runs, %d exits\n", runs, st.Total())
				fmt.Fprint(w, st.String())
				return nil
			}
			return fmt.Errorf("%w: want `vm run test [VARIANT] [cores=all]` or `vm stat`", shell.ErrUsage)
		},
	}}
}

func runTest(w io.Writer, r Runner, args []string) error {
	variant, all := testguest.VariantStandard, false
	for _, a := range args {
		switch {
		case a == "cores=all":
			all = true
		default:
			v, ok := variantByName(a)
			if !ok {
				return fmt.Errorf("%w: unknown test guest %q (%s)", shell.ErrUsage, a, variantNames())
			}
			variant = v
		}
	}
	tries := 1
	if all {
		tries = 16
	}
	var seen []uint32
	for i := 0; i < tries; i++ {
		res, err := r.RunTest(variant)
		if err != nil {
			return err
		}
		if slices.Contains(seen, res.APICID) {
			continue
		}
		seen = append(seen, res.APICID)
		fmt.Fprint(w, res.String())
	}
	if all {
		fmt.Fprintf(w, "ran on %d cores\n", len(seen))
	}
	return nil
}

func variantByName(s string) (testguest.Variant, bool) {
	for _, v := range testguest.Variants() {
		if v.String() == s {
			return v, true
		}
	}
	return 0, false
}

func variantNames() string {
	var n []string
	for _, v := range testguest.Variants() {
		n = append(n, v.String())
	}
	return strings.Join(n, ", ")
}
