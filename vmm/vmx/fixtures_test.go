package vmx

import "github.com/big-iron/big-iron/vmm/vmx/captured"

var (
	bochsHaswell4770 = captured.BochsHaswell4770()
	xeonE31270v2     = captured.XeonE31270v2()
	skylakeSP9980XE  = captured.SkylakeSP9980XE()
)

func reader(m map[uint32]uint64) MSRReader { return captured.Reader(m) }
