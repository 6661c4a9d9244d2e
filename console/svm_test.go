// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/vmm/svm"
)

func TestSVMCommand(t *testing.T) {
	// QEMU 7.2 TCG -cpu max (see vmm/svm's capability test)
	cpuid := func(leaf, _ uint32) (uint32, uint32, uint32, uint32) {
		switch leaf {
		case svm.LeafExtMax:
			return svm.LeafSVM, 0, 0, 0
		case svm.LeafExtFeatures:
			return 0, 0, svm.ExtFeaturesECXSVM, 0
		case svm.LeafAddrSizes:
			return 0x3028, 0, 0, 0
		case svm.LeafSVM:
			return 1, 16, 0, uint32(svm.FeatNP | svm.FeatVGIF | svm.FeatNestedVirtVmcbAddrChk)
		}
		return 0, 0, 0, 0
	}
	var msrs []uint32
	rdmsr := func(msr uint32) (uint64, error) {
		msrs = append(msrs, msr)
		if msr != svm.MSRVMCR {
			return 0, errors.New("#GP")
		}
		return 0, nil
	}
	var b bytes.Buffer
	c := SVMCommand(cpuid, rdmsr)
	if err := c.Run(&b, nil); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"SVM: yes", "16 ASIDs", "instruction lengths by decoding", "big-iron: usable"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("svm output lacks %q:\n%s", w, b.String())
		}
	}
	if len(msrs) != 1 || msrs[0] != svm.MSRVMCR {
		t.Errorf("read MSRs %#x", msrs)
	}
	if err := c.Run(&b, []string{"x"}); err == nil {
		t.Error("svm x accepted")
	}
}

func TestSVMCommandIntel(t *testing.T) {
	cpuid := func(leaf, _ uint32) (uint32, uint32, uint32, uint32) {
		if leaf == svm.LeafExtMax {
			return 0x80000008, 0, 0, 0
		}
		return 0, 0, 0, 0
	}
	rdmsr := func(msr uint32) (uint64, error) {
		t.Errorf("read MSR %#x on a CPU without SVM", msr)
		return 0, nil
	}
	var b bytes.Buffer
	if err := SVMCommand(cpuid, rdmsr).Run(&b, nil); err != nil || !strings.Contains(b.String(), "SVM: no") {
		t.Errorf("svm: %q %v", b.String(), err)
	}
	b.Reset()
	if err := SVMCommand(nil, nil).Run(&b, nil); err != nil || !strings.Contains(b.String(), "no CPUID") {
		t.Errorf("svm without CPUID: %q %v", b.String(), err)
	}
}
