// Package captured holds VMX capability MSR values captured from real
// processors and from Bochs, for hosted tests of code that decodes them
// (vmx.ReadCapabilities and everything built on it). Each function returns
// a fresh map from MSR index to value.
package captured

import "fmt"

// BochsHaswell4770 returns what Bochs reports for its corei7_haswell_4770 CPU
// model, built with --enable-vmx=2 --enable-x86-64 and MONITOR/MWAIT
// support. Derived by reading the Bochs sources (github.com/bochs-emu/Bochs
// at commit 783b58fd6d9bae598a07c59719122322fa0edce6):
// bochs/cpu/cpudb/intel/corei7_haswell_4770.cc (ISA extensions and
// get_vmx_extensions_bitmask), bochs/cpu/vmcs.cc (init_*_vmexec_ctrls,
// init_vmexit_ctrls, init_vmentry_ctrls, init_ept_vpid_capabilities,
// init_vmfunc_capabilities), bochs/cpu/vmx.h (VMX_MSR_* macros: revision
// 0x2B, VMCS area 4096 bytes, WB, MISC, CR0/CR4 fixed values, VMCS_ENUM
// 0x54), bochs/cpu/crregs.cc (get_cr4_allow_mask, which is CR4_FIXED1) and
// bochs/cpu/init.cc (IA32_FEATURE_CONTROL resets to 0, unlocked).
func BochsHaswell4770() map[uint32]uint64 {
	return map[uint32]uint64{
		0x03A: 0x0000000000000000, // IA32_FEATURE_CONTROL: unlocked at reset
		0x480: 0x00D810000000002B, // BASIC: rev 0x2B, 4096 bytes, WB, INS/OUTS info, TRUE ctls
		0x481: 0x0000007F00000016, // PINBASED
		0x482: 0xFFF9FFFE0401E172, // PROCBASED
		0x483: 0x407FFFFF00036DFF, // EXIT (includes "save IA32_PERF_GLOBAL_CTL", bit 30)
		0x484: 0x0000FFFF000011FF, // ENTRY
		0x485: 0x00000000200401E0, // MISC: rate 0, LMA, HLT/shutdown/SIPI, 4 CR3 targets, VMWRITE any
		0x486: 0x0000000080000021, // CR0_FIXED0
		0x487: 0x00000000FFFFFFFF, // CR0_FIXED1
		0x488: 0x0000000000002000, // CR4_FIXED0
		0x489: 0x00000000001727FF, // CR4_FIXED1 (no SMAP/PKE/UMIP/LA57 on Haswell)
		0x48A: 0x0000000000000054, // VMCS_ENUM
		0x48B: 0x00047FFF00000000, // PROCBASED_CTLS2: bits 0-14 and 18 (#VE)
		0x48C: 0x00000F0106334141, // EPT_VPID_CAP: 0x06114141 | 1G | A/D, INVVPID all types
		0x48D: 0x0000007F00000016, // TRUE_PINBASED
		0x48E: 0xFFF9FFFE04006172, // TRUE_PROCBASED
		0x48F: 0x407FFFFF00036DFB, // TRUE_EXIT
		0x490: 0x0000FFFF000011FB, // TRUE_ENTRY
		0x491: 0x0000000000000001, // VMFUNC: EPTP switching
	}
}

// XeonE31270v2 returns an Intel Xeon E3-1270 v2 (Ivy Bridge), from the public
// comparison table github.com/honorarybot/VmxCaps, vmx.html at commit
// 74f09acfb04af5e4b55d1057f97a2b7f789eff93 ("Added Xeon E3-1270 v2"),
// column "E3-1270 v2". The table does not list IA32_FEATURE_CONTROL; 0x5
// (locked, VMXON outside SMX) is what firmware with VT-x enabled leaves.
func XeonE31270v2() map[uint32]uint64 {
	return map[uint32]uint64{
		0x03A: 0x0000000000000005, // not in the dump, see above
		0x480: 0x00DA040000000010,
		0x481: 0x0000007F00000016,
		0x482: 0xFFF9FFFE0401E172,
		0x483: 0x007FFFFF00036DFF,
		0x484: 0x0000FFFF000011FF,
		0x485: 0x00000000100401E5,
		0x486: 0x0000000080000021,
		0x487: 0x00000000FFFFFFFF,
		0x488: 0x0000000000002000,
		0x489: 0x00000000001767FF,
		0x48A: 0x000000000000002A,
		0x48B: 0x000008FF00000000,
		0x48C: 0x00000F0106114141,
		0x48D: 0x0000007F00000016,
		0x48E: 0xFFF9FFFE04006172,
		0x48F: 0x007FFFFF00036DFB,
		0x490: 0x0000FFFF000011FB,
	}
}

// SkylakeSP9980XE returns an Intel Core i9-9980XE: the Skylake-SP/X die of the
// Xeon Scalable (Skylake/Cascade Lake server) family, from the same table
// (github.com/honorarybot/VmxCaps vmx.html at commit
// 7b425c2191dab25ac5a4b31e5d926218f48ed552, column "9980XE"). The table
// lists no IA32_VMX_VMFUNC although "enable VM functions" may be 1: the
// reader fails that read, exercising the tolerant path.
func SkylakeSP9980XE() map[uint32]uint64 {
	return map[uint32]uint64{
		0x03A: 0x0000000000000005, // not in the dump, see XeonE31270v2
		0x480: 0x00DA040000000004,
		0x481: 0x000000FF00000016,
		0x482: 0xFFF9FFFE0401E172,
		0x483: 0x01FFFFFF00036DFF,
		0x484: 0x0003FFFF000011FF,
		0x485: 0x000000007004C1E7,
		0x486: 0x0000000080000021,
		0x487: 0x00000000FFFFFFFF,
		0x488: 0x0000000000002000,
		0x489: 0x00000000003727FF,
		0x48A: 0x000000000000002E,
		0x48B: 0x025D3FFF00000000,
		0x48C: 0x00000F0106734141,
		0x48D: 0x000000FF00000016,
		0x48E: 0xFFF9FFFE04006172,
		0x48F: 0x01FFFFFF00036DFB,
		0x490: 0x0003FFFF000011FB,
	}
}

// Reader returns a reader (the shape of vmx.MSRReader) over captured
// values; absent MSRs fail as RDMSR's #GP would.
func Reader(m map[uint32]uint64) func(msr uint32) (uint64, error) {
	return func(msr uint32) (uint64, error) {
		v, ok := m[msr]
		if !ok {
			return 0, fmt.Errorf("MSR %#x not captured (#GP)", msr)
		}
		return v, nil
	}
}
