package vcpu

// Indexes of the MSRs that have a dedicated field in State
// (Intel SDM Vol. 4, Table 2-2).
const (
	MSRTSC          uint32 = 0x10
	MSRAPICBase     uint32 = 0x1B
	MSRSysenterCS   uint32 = 0x174
	MSRSysenterESP  uint32 = 0x175
	MSRSysenterEIP  uint32 = 0x176
	MSRPAT          uint32 = 0x277
	MSRTSCDeadline  uint32 = 0x6E0
	MSRX2APICFirst  uint32 = 0x800 // x2APIC register space, Intel SDM Vol. 3A, 11.12.1.2
	MSRX2APICLast   uint32 = 0x8FF
	MSREFER         uint32 = 0xC0000080
	MSRSTAR         uint32 = 0xC0000081
	MSRLSTAR        uint32 = 0xC0000082
	MSRCSTAR        uint32 = 0xC0000083
	MSRFMASK        uint32 = 0xC0000084
	MSRFSBase       uint32 = 0xC0000100
	MSRGSBase       uint32 = 0xC0000101
	MSRKernelGSBase uint32 = 0xC0000102
)

// dedicatedMSR reports whether index names an MSR that State holds in its
// own field (or derives, as the TSC from the TSC offset), and which may
// therefore not appear in the extra MSR list.
func dedicatedMSR(index uint32) bool {
	switch index {
	case MSRTSC, MSRAPICBase, MSRSysenterCS, MSRSysenterESP, MSRSysenterEIP,
		MSRPAT, MSRTSCDeadline, MSREFER, MSRSTAR, MSRLSTAR, MSRCSTAR, MSRFMASK,
		MSRFSBase, MSRGSBase, MSRKernelGSBase:
		return true
	}
	return index >= MSRX2APICFirst && index <= MSRX2APICLast
}
