package vcpu

import "encoding/binary"

// Architectural values after RESET or INIT (Intel SDM Vol. 3A, "Processor
// State After Reset", and "Local APIC State After Power-Up or Reset").
const (
	ResetRIP    uint64 = 0xFFF0
	ResetRFLAGS uint64 = 0x2
	ResetCR0    uint64 = 0x60000010 // CD, NW, ET
	ResetDR6    uint64 = 0xFFFF0FF0
	ResetDR7    uint64 = 0x400
	ResetPAT    uint64 = 0x0007040600070406
	ResetMXCSR  uint32 = 0x1F80
	// DefaultAPICBase is the default physical base of the local APIC.
	DefaultAPICBase uint64 = 0xFEE00000

	arCodeReset uint32 = ARP | ARS | 0xB // present, execute/read, accessed
	arDataReset uint32 = ARP | ARS | 0x3 // present, read/write, accessed
	arLDTReset  uint32 = ARP | 0x2       // present, LDT
	arTRReset   uint32 = ARP | 0x3       // present, busy 16-bit TSS
)

// Reset sets s to the state of a logical processor after power-up or INIT
// with the given x2APIC ID. The bootstrap processor starts active at the
// reset vector; the others wait for a start-up IPI. The XSAVE area holds
// the initial configuration of every component (XSTATE_BV = 0). RDX, which
// hardware loads with the processor signature, is left zero.
func (s *State) Reset(apicID uint32, bsp bool) {
	*s = State{}
	s.RIP = ResetRIP
	s.RFLAGS = ResetRFLAGS
	for i := range s.Seg {
		s.Seg[i] = Segment{Limit: 0xFFFF, Access: arDataReset}
	}
	s.Seg[CS] = Segment{Selector: 0xF000, Base: 0xFFFF0000, Limit: 0xFFFF, Access: arCodeReset}
	s.Seg[LDTR].Access = arLDTReset
	s.Seg[TR].Access = arTRReset
	s.GDTR.Limit = 0xFFFF
	s.IDTR.Limit = 0xFFFF
	s.CR0 = ResetCR0
	s.DR6 = ResetDR6
	s.DR7 = ResetDR7
	s.PAT = ResetPAT
	s.XCR0 = XCR0X87
	s.XSAVELen = MinXSAVE
	binary.LittleEndian.PutUint32(s.XSAVE[xsaveMXCSROffset:], ResetMXCSR)

	a := &s.LAPIC
	a.Base = DefaultAPICBase | APICBaseEnable
	if bsp {
		a.Base |= APICBaseBSP
	}
	if apicID > 0xFF {
		// An ID beyond 8 bits exists only in x2APIC mode.
		a.Base |= APICBaseX2APIC
		a.LDR = X2APICLogicalID(apicID)
	}
	a.ID = apicID
	a.DFR = DFRFlat
	a.SVR = 0xFF
	for i := range a.LVT {
		a.LVT[i] = LVTMasked
	}
	if bsp {
		s.Activity = Active
	} else {
		s.Activity = WaitForSIPI
	}
}
