// Code generated from the tables of SDM Vol. 3D Appendix B; edit with care.

package vmx

// VMCS field encodings (SDM Vol. 3D, Appendix B). 64-bit fields are listed
// by their full encoding; the "high" half (encoding|1) is only needed by
// 32-bit software and is available through Field.High.
const (
	// 16-bit control fields (SDM Vol. 3D, B.1.1)
	VirtualProcessorID    Field = 0x0000 // VPID
	PostedIntNotifyVector Field = 0x0002 // posted-interrupt notification vector
	EPTPIndex             Field = 0x0004 // EPTP index
	// 16-bit guest-state fields (B.1.2)
	GuestESSelector      Field = 0x0800 // guest ES selector
	GuestCSSelector      Field = 0x0802 // guest CS selector
	GuestSSSelector      Field = 0x0804 // guest SS selector
	GuestDSSelector      Field = 0x0806 // guest DS selector
	GuestFSSelector      Field = 0x0808 // guest FS selector
	GuestGSSelector      Field = 0x080a // guest GS selector
	GuestLDTRSelector    Field = 0x080c // guest LDTR selector
	GuestTRSelector      Field = 0x080e // guest TR selector
	GuestInterruptStatus Field = 0x0810 // guest interrupt status
	PMLIndex             Field = 0x0812 // PML index
	// 16-bit host-state fields (B.1.3)
	HostESSelector Field = 0x0c00 // host ES selector
	HostCSSelector Field = 0x0c02 // host CS selector
	HostSSSelector Field = 0x0c04 // host SS selector
	HostDSSelector Field = 0x0c06 // host DS selector
	HostFSSelector Field = 0x0c08 // host FS selector
	HostGSSelector Field = 0x0c0a // host GS selector
	HostTRSelector Field = 0x0c0c // host TR selector
	// 64-bit control fields (B.2.1)
	IOBitmapA            Field = 0x2000 // I/O bitmap A address
	IOBitmapB            Field = 0x2002 // I/O bitmap B address
	MSRBitmap            Field = 0x2004 // MSR bitmap address
	ExitMSRStoreAddr     Field = 0x2006 // VM-exit MSR-store address
	ExitMSRLoadAddr      Field = 0x2008 // VM-exit MSR-load address
	EntryMSRLoadAddr     Field = 0x200a // VM-entry MSR-load address
	ExecutiveVMCSPointer Field = 0x200c // executive-VMCS pointer
	PMLAddress           Field = 0x200e // PML address
	TSCOffset            Field = 0x2010 // TSC offset
	VirtualAPICAddr      Field = 0x2012 // virtual-APIC address
	APICAccessAddr       Field = 0x2014 // APIC-access address
	PostedIntDescAddr    Field = 0x2016 // posted-interrupt descriptor address
	VMFunctionControls   Field = 0x2018 // VM-function controls
	EPTPointer           Field = 0x201a // EPT pointer
	EOIExitBitmap0       Field = 0x201c // EOI-exit bitmap 0
	EOIExitBitmap1       Field = 0x201e // EOI-exit bitmap 1
	EOIExitBitmap2       Field = 0x2020 // EOI-exit bitmap 2
	EOIExitBitmap3       Field = 0x2022 // EOI-exit bitmap 3
	EPTPListAddr         Field = 0x2024 // EPTP-list address
	VMReadBitmap         Field = 0x2026 // VMREAD-bitmap address
	VMWriteBitmap        Field = 0x2028 // VMWRITE-bitmap address
	VEInfoAddr           Field = 0x202a // virtualization-exception information address
	XSSExitingBitmap     Field = 0x202c // XSS-exiting bitmap
	TSCMultiplier        Field = 0x2032 // TSC multiplier
	TertiaryProcControls Field = 0x2034 // tertiary processor-based VM-execution controls
	// 64-bit read-only data fields (B.2.2)
	GuestPhysicalAddress Field = 0x2400 // guest-physical address
	// 64-bit guest-state fields (B.2.3)
	VMCSLinkPointer     Field = 0x2800 // VMCS link pointer
	GuestDebugCtl       Field = 0x2802 // guest IA32_DEBUGCTL
	GuestPAT            Field = 0x2804 // guest IA32_PAT
	GuestEFER           Field = 0x2806 // guest IA32_EFER
	GuestPerfGlobalCtrl Field = 0x2808 // guest IA32_PERF_GLOBAL_CTRL
	GuestPDPTE0         Field = 0x280a // guest PDPTE0
	GuestPDPTE1         Field = 0x280c // guest PDPTE1
	GuestPDPTE2         Field = 0x280e // guest PDPTE2
	GuestPDPTE3         Field = 0x2810 // guest PDPTE3
	GuestBNDCFGS        Field = 0x2812 // guest IA32_BNDCFGS
	GuestRTITCtl        Field = 0x2814 // guest IA32_RTIT_CTL
	GuestPKRS           Field = 0x2818 // guest IA32_PKRS
	// 64-bit host-state fields (B.2.4)
	HostPAT            Field = 0x2c00 // host IA32_PAT
	HostEFER           Field = 0x2c02 // host IA32_EFER
	HostPerfGlobalCtrl Field = 0x2c04 // host IA32_PERF_GLOBAL_CTRL
	HostPKRS           Field = 0x2c06 // host IA32_PKRS
	// 32-bit control fields (B.3.1)
	VMCSPinBasedControls    Field = 0x4000 // pin-based VM-execution controls
	VMCSProcBasedControls   Field = 0x4002 // primary processor-based VM-execution controls
	ExceptionBitmap         Field = 0x4004 // exception bitmap
	PageFaultErrorMask      Field = 0x4006 // page-fault error-code mask
	PageFaultErrorMatch     Field = 0x4008 // page-fault error-code match
	CR3TargetCount          Field = 0x400a // CR3-target count
	VMCSExitControls        Field = 0x400c // primary VM-exit controls
	ExitMSRStoreCount       Field = 0x400e // VM-exit MSR-store count
	ExitMSRLoadCount        Field = 0x4010 // VM-exit MSR-load count
	VMCSEntryControls       Field = 0x4012 // VM-entry controls
	EntryMSRLoadCount       Field = 0x4014 // VM-entry MSR-load count
	EntryInterruptionInfo   Field = 0x4016 // VM-entry interruption-information field
	EntryExceptionErrorCode Field = 0x4018 // VM-entry exception error code
	EntryInstructionLength  Field = 0x401a // VM-entry instruction length
	TPRThreshold            Field = 0x401c // TPR threshold
	VMCSProcBasedControls2  Field = 0x401e // secondary processor-based VM-execution controls
	PLEGap                  Field = 0x4020 // PLE_Gap
	PLEWindow               Field = 0x4022 // PLE_Window
	// 32-bit read-only data fields (B.3.2)
	VMCSVMInstructionError    Field = 0x4400 // VM-instruction error
	VMCSExitReason            Field = 0x4402 // exit reason
	ExitInterruptionInfo      Field = 0x4404 // VM-exit interruption information
	ExitInterruptionErrorCode Field = 0x4406 // VM-exit interruption error code
	IDTVectoringInfo          Field = 0x4408 // IDT-vectoring information
	IDTVectoringErrorCode     Field = 0x440a // IDT-vectoring error code
	ExitInstructionLength     Field = 0x440c // VM-exit instruction length
	ExitInstructionInfo       Field = 0x440e // VM-exit instruction information
	// 32-bit guest-state fields (B.3.3)
	GuestESLimit          Field = 0x4800 // guest ES limit
	GuestCSLimit          Field = 0x4802 // guest CS limit
	GuestSSLimit          Field = 0x4804 // guest SS limit
	GuestDSLimit          Field = 0x4806 // guest DS limit
	GuestFSLimit          Field = 0x4808 // guest FS limit
	GuestGSLimit          Field = 0x480a // guest GS limit
	GuestLDTRLimit        Field = 0x480c // guest LDTR limit
	GuestTRLimit          Field = 0x480e // guest TR limit
	GuestGDTRLimit        Field = 0x4810 // guest GDTR limit
	GuestIDTRLimit        Field = 0x4812 // guest IDTR limit
	GuestESAccessRights   Field = 0x4814 // guest ES access rights
	GuestCSAccessRights   Field = 0x4816 // guest CS access rights
	GuestSSAccessRights   Field = 0x4818 // guest SS access rights
	GuestDSAccessRights   Field = 0x481a // guest DS access rights
	GuestFSAccessRights   Field = 0x481c // guest FS access rights
	GuestGSAccessRights   Field = 0x481e // guest GS access rights
	GuestLDTRAccessRights Field = 0x4820 // guest LDTR access rights
	GuestTRAccessRights   Field = 0x4822 // guest TR access rights
	GuestInterruptibility Field = 0x4824 // guest interruptibility state
	GuestActivityState    Field = 0x4826 // guest activity state
	GuestSMBASE           Field = 0x4828 // guest SMBASE
	GuestSysenterCS       Field = 0x482a // guest IA32_SYSENTER_CS
	PreemptionTimerValue  Field = 0x482e // VMX-preemption timer value
	// 32-bit host-state field (B.3.4)
	HostSysenterCS Field = 0x4c00 // host IA32_SYSENTER_CS
	// Natural-width control fields (B.4.1)
	CR0GuestHostMask Field = 0x6000 // CR0 guest/host mask
	CR4GuestHostMask Field = 0x6002 // CR4 guest/host mask
	CR0ReadShadow    Field = 0x6004 // CR0 read shadow
	CR4ReadShadow    Field = 0x6006 // CR4 read shadow
	CR3Target0       Field = 0x6008 // CR3-target value 0
	CR3Target1       Field = 0x600a // CR3-target value 1
	CR3Target2       Field = 0x600c // CR3-target value 2
	CR3Target3       Field = 0x600e // CR3-target value 3
	// Natural-width read-only data fields (B.4.2)
	VMCSExitQualification Field = 0x6400 // exit qualification
	IORCX                 Field = 0x6402 // I/O RCX
	IORSI                 Field = 0x6404 // I/O RSI
	IORDI                 Field = 0x6406 // I/O RDI
	IORIP                 Field = 0x6408 // I/O RIP
	GuestLinearAddress    Field = 0x640a // guest-linear address
	// Natural-width guest-state fields (B.4.3)
	GuestCR0                    Field = 0x6800 // guest CR0
	GuestCR3                    Field = 0x6802 // guest CR3
	GuestCR4                    Field = 0x6804 // guest CR4
	GuestESBase                 Field = 0x6806 // guest ES base
	GuestCSBase                 Field = 0x6808 // guest CS base
	GuestSSBase                 Field = 0x680a // guest SS base
	GuestDSBase                 Field = 0x680c // guest DS base
	GuestFSBase                 Field = 0x680e // guest FS base
	GuestGSBase                 Field = 0x6810 // guest GS base
	GuestLDTRBase               Field = 0x6812 // guest LDTR base
	GuestTRBase                 Field = 0x6814 // guest TR base
	GuestGDTRBase               Field = 0x6816 // guest GDTR base
	GuestIDTRBase               Field = 0x6818 // guest IDTR base
	GuestDR7                    Field = 0x681a // guest DR7
	GuestRSP                    Field = 0x681c // guest RSP
	GuestRIP                    Field = 0x681e // guest RIP
	GuestRFLAGS                 Field = 0x6820 // guest RFLAGS
	GuestPendingDebugExceptions Field = 0x6822 // guest pending debug exceptions
	GuestSysenterESP            Field = 0x6824 // guest IA32_SYSENTER_ESP
	GuestSysenterEIP            Field = 0x6826 // guest IA32_SYSENTER_EIP
	// Natural-width host-state fields (B.4.4)
	HostCR0         Field = 0x6c00 // host CR0
	HostCR3         Field = 0x6c02 // host CR3
	HostCR4         Field = 0x6c04 // host CR4
	HostFSBase      Field = 0x6c06 // host FS base
	HostGSBase      Field = 0x6c08 // host GS base
	HostTRBase      Field = 0x6c0a // host TR base
	HostGDTRBase    Field = 0x6c0c // host GDTR base
	HostIDTRBase    Field = 0x6c0e // host IDTR base
	HostSysenterESP Field = 0x6c10 // host IA32_SYSENTER_ESP
	HostSysenterEIP Field = 0x6c12 // host IA32_SYSENTER_EIP
	HostRSP         Field = 0x6c14 // host RSP
	HostRIP         Field = 0x6c16 // host RIP
)

// fieldNames maps each named field to its SDM name.
var fieldNames = map[Field]string{
	VirtualProcessorID:          "VPID",
	PostedIntNotifyVector:       "posted-interrupt notification vector",
	EPTPIndex:                   "EPTP index",
	GuestESSelector:             "guest ES selector",
	GuestCSSelector:             "guest CS selector",
	GuestSSSelector:             "guest SS selector",
	GuestDSSelector:             "guest DS selector",
	GuestFSSelector:             "guest FS selector",
	GuestGSSelector:             "guest GS selector",
	GuestLDTRSelector:           "guest LDTR selector",
	GuestTRSelector:             "guest TR selector",
	GuestInterruptStatus:        "guest interrupt status",
	PMLIndex:                    "PML index",
	HostESSelector:              "host ES selector",
	HostCSSelector:              "host CS selector",
	HostSSSelector:              "host SS selector",
	HostDSSelector:              "host DS selector",
	HostFSSelector:              "host FS selector",
	HostGSSelector:              "host GS selector",
	HostTRSelector:              "host TR selector",
	IOBitmapA:                   "I/O bitmap A address",
	IOBitmapB:                   "I/O bitmap B address",
	MSRBitmap:                   "MSR bitmap address",
	ExitMSRStoreAddr:            "VM-exit MSR-store address",
	ExitMSRLoadAddr:             "VM-exit MSR-load address",
	EntryMSRLoadAddr:            "VM-entry MSR-load address",
	ExecutiveVMCSPointer:        "executive-VMCS pointer",
	PMLAddress:                  "PML address",
	TSCOffset:                   "TSC offset",
	VirtualAPICAddr:             "virtual-APIC address",
	APICAccessAddr:              "APIC-access address",
	PostedIntDescAddr:           "posted-interrupt descriptor address",
	VMFunctionControls:          "VM-function controls",
	EPTPointer:                  "EPT pointer",
	EOIExitBitmap0:              "EOI-exit bitmap 0",
	EOIExitBitmap1:              "EOI-exit bitmap 1",
	EOIExitBitmap2:              "EOI-exit bitmap 2",
	EOIExitBitmap3:              "EOI-exit bitmap 3",
	EPTPListAddr:                "EPTP-list address",
	VMReadBitmap:                "VMREAD-bitmap address",
	VMWriteBitmap:               "VMWRITE-bitmap address",
	VEInfoAddr:                  "virtualization-exception information address",
	XSSExitingBitmap:            "XSS-exiting bitmap",
	TSCMultiplier:               "TSC multiplier",
	TertiaryProcControls:        "tertiary processor-based VM-execution controls",
	GuestPhysicalAddress:        "guest-physical address",
	VMCSLinkPointer:             "VMCS link pointer",
	GuestDebugCtl:               "guest IA32_DEBUGCTL",
	GuestPAT:                    "guest IA32_PAT",
	GuestEFER:                   "guest IA32_EFER",
	GuestPerfGlobalCtrl:         "guest IA32_PERF_GLOBAL_CTRL",
	GuestPDPTE0:                 "guest PDPTE0",
	GuestPDPTE1:                 "guest PDPTE1",
	GuestPDPTE2:                 "guest PDPTE2",
	GuestPDPTE3:                 "guest PDPTE3",
	GuestBNDCFGS:                "guest IA32_BNDCFGS",
	GuestRTITCtl:                "guest IA32_RTIT_CTL",
	GuestPKRS:                   "guest IA32_PKRS",
	HostPAT:                     "host IA32_PAT",
	HostEFER:                    "host IA32_EFER",
	HostPerfGlobalCtrl:          "host IA32_PERF_GLOBAL_CTRL",
	HostPKRS:                    "host IA32_PKRS",
	VMCSPinBasedControls:        "pin-based VM-execution controls",
	VMCSProcBasedControls:       "primary processor-based VM-execution controls",
	ExceptionBitmap:             "exception bitmap",
	PageFaultErrorMask:          "page-fault error-code mask",
	PageFaultErrorMatch:         "page-fault error-code match",
	CR3TargetCount:              "CR3-target count",
	VMCSExitControls:            "primary VM-exit controls",
	ExitMSRStoreCount:           "VM-exit MSR-store count",
	ExitMSRLoadCount:            "VM-exit MSR-load count",
	VMCSEntryControls:           "VM-entry controls",
	EntryMSRLoadCount:           "VM-entry MSR-load count",
	EntryInterruptionInfo:       "VM-entry interruption-information field",
	EntryExceptionErrorCode:     "VM-entry exception error code",
	EntryInstructionLength:      "VM-entry instruction length",
	TPRThreshold:                "TPR threshold",
	VMCSProcBasedControls2:      "secondary processor-based VM-execution controls",
	PLEGap:                      "PLE_Gap",
	PLEWindow:                   "PLE_Window",
	VMCSVMInstructionError:      "VM-instruction error",
	VMCSExitReason:              "exit reason",
	ExitInterruptionInfo:        "VM-exit interruption information",
	ExitInterruptionErrorCode:   "VM-exit interruption error code",
	IDTVectoringInfo:            "IDT-vectoring information",
	IDTVectoringErrorCode:       "IDT-vectoring error code",
	ExitInstructionLength:       "VM-exit instruction length",
	ExitInstructionInfo:         "VM-exit instruction information",
	GuestESLimit:                "guest ES limit",
	GuestCSLimit:                "guest CS limit",
	GuestSSLimit:                "guest SS limit",
	GuestDSLimit:                "guest DS limit",
	GuestFSLimit:                "guest FS limit",
	GuestGSLimit:                "guest GS limit",
	GuestLDTRLimit:              "guest LDTR limit",
	GuestTRLimit:                "guest TR limit",
	GuestGDTRLimit:              "guest GDTR limit",
	GuestIDTRLimit:              "guest IDTR limit",
	GuestESAccessRights:         "guest ES access rights",
	GuestCSAccessRights:         "guest CS access rights",
	GuestSSAccessRights:         "guest SS access rights",
	GuestDSAccessRights:         "guest DS access rights",
	GuestFSAccessRights:         "guest FS access rights",
	GuestGSAccessRights:         "guest GS access rights",
	GuestLDTRAccessRights:       "guest LDTR access rights",
	GuestTRAccessRights:         "guest TR access rights",
	GuestInterruptibility:       "guest interruptibility state",
	GuestActivityState:          "guest activity state",
	GuestSMBASE:                 "guest SMBASE",
	GuestSysenterCS:             "guest IA32_SYSENTER_CS",
	PreemptionTimerValue:        "VMX-preemption timer value",
	HostSysenterCS:              "host IA32_SYSENTER_CS",
	CR0GuestHostMask:            "CR0 guest/host mask",
	CR4GuestHostMask:            "CR4 guest/host mask",
	CR0ReadShadow:               "CR0 read shadow",
	CR4ReadShadow:               "CR4 read shadow",
	CR3Target0:                  "CR3-target value 0",
	CR3Target1:                  "CR3-target value 1",
	CR3Target2:                  "CR3-target value 2",
	CR3Target3:                  "CR3-target value 3",
	VMCSExitQualification:       "exit qualification",
	IORCX:                       "I/O RCX",
	IORSI:                       "I/O RSI",
	IORDI:                       "I/O RDI",
	IORIP:                       "I/O RIP",
	GuestLinearAddress:          "guest-linear address",
	GuestCR0:                    "guest CR0",
	GuestCR3:                    "guest CR3",
	GuestCR4:                    "guest CR4",
	GuestESBase:                 "guest ES base",
	GuestCSBase:                 "guest CS base",
	GuestSSBase:                 "guest SS base",
	GuestDSBase:                 "guest DS base",
	GuestFSBase:                 "guest FS base",
	GuestGSBase:                 "guest GS base",
	GuestLDTRBase:               "guest LDTR base",
	GuestTRBase:                 "guest TR base",
	GuestGDTRBase:               "guest GDTR base",
	GuestIDTRBase:               "guest IDTR base",
	GuestDR7:                    "guest DR7",
	GuestRSP:                    "guest RSP",
	GuestRIP:                    "guest RIP",
	GuestRFLAGS:                 "guest RFLAGS",
	GuestPendingDebugExceptions: "guest pending debug exceptions",
	GuestSysenterESP:            "guest IA32_SYSENTER_ESP",
	GuestSysenterEIP:            "guest IA32_SYSENTER_EIP",
	HostCR0:                     "host CR0",
	HostCR3:                     "host CR3",
	HostCR4:                     "host CR4",
	HostFSBase:                  "host FS base",
	HostGSBase:                  "host GS base",
	HostTRBase:                  "host TR base",
	HostGDTRBase:                "host GDTR base",
	HostIDTRBase:                "host IDTR base",
	HostSysenterESP:             "host IA32_SYSENTER_ESP",
	HostSysenterEIP:             "host IA32_SYSENTER_EIP",
	HostRSP:                     "host RSP",
	HostRIP:                     "host RIP",
}

// allFields lists every named field, in encoding order within groups.
var allFields = [...]Field{
	VirtualProcessorID,
	PostedIntNotifyVector,
	EPTPIndex,
	GuestESSelector,
	GuestCSSelector,
	GuestSSSelector,
	GuestDSSelector,
	GuestFSSelector,
	GuestGSSelector,
	GuestLDTRSelector,
	GuestTRSelector,
	GuestInterruptStatus,
	PMLIndex,
	HostESSelector,
	HostCSSelector,
	HostSSSelector,
	HostDSSelector,
	HostFSSelector,
	HostGSSelector,
	HostTRSelector,
	IOBitmapA,
	IOBitmapB,
	MSRBitmap,
	ExitMSRStoreAddr,
	ExitMSRLoadAddr,
	EntryMSRLoadAddr,
	ExecutiveVMCSPointer,
	PMLAddress,
	TSCOffset,
	VirtualAPICAddr,
	APICAccessAddr,
	PostedIntDescAddr,
	VMFunctionControls,
	EPTPointer,
	EOIExitBitmap0,
	EOIExitBitmap1,
	EOIExitBitmap2,
	EOIExitBitmap3,
	EPTPListAddr,
	VMReadBitmap,
	VMWriteBitmap,
	VEInfoAddr,
	XSSExitingBitmap,
	TSCMultiplier,
	TertiaryProcControls,
	GuestPhysicalAddress,
	VMCSLinkPointer,
	GuestDebugCtl,
	GuestPAT,
	GuestEFER,
	GuestPerfGlobalCtrl,
	GuestPDPTE0,
	GuestPDPTE1,
	GuestPDPTE2,
	GuestPDPTE3,
	GuestBNDCFGS,
	GuestRTITCtl,
	GuestPKRS,
	HostPAT,
	HostEFER,
	HostPerfGlobalCtrl,
	HostPKRS,
	VMCSPinBasedControls,
	VMCSProcBasedControls,
	ExceptionBitmap,
	PageFaultErrorMask,
	PageFaultErrorMatch,
	CR3TargetCount,
	VMCSExitControls,
	ExitMSRStoreCount,
	ExitMSRLoadCount,
	VMCSEntryControls,
	EntryMSRLoadCount,
	EntryInterruptionInfo,
	EntryExceptionErrorCode,
	EntryInstructionLength,
	TPRThreshold,
	VMCSProcBasedControls2,
	PLEGap,
	PLEWindow,
	VMCSVMInstructionError,
	VMCSExitReason,
	ExitInterruptionInfo,
	ExitInterruptionErrorCode,
	IDTVectoringInfo,
	IDTVectoringErrorCode,
	ExitInstructionLength,
	ExitInstructionInfo,
	GuestESLimit,
	GuestCSLimit,
	GuestSSLimit,
	GuestDSLimit,
	GuestFSLimit,
	GuestGSLimit,
	GuestLDTRLimit,
	GuestTRLimit,
	GuestGDTRLimit,
	GuestIDTRLimit,
	GuestESAccessRights,
	GuestCSAccessRights,
	GuestSSAccessRights,
	GuestDSAccessRights,
	GuestFSAccessRights,
	GuestGSAccessRights,
	GuestLDTRAccessRights,
	GuestTRAccessRights,
	GuestInterruptibility,
	GuestActivityState,
	GuestSMBASE,
	GuestSysenterCS,
	PreemptionTimerValue,
	HostSysenterCS,
	CR0GuestHostMask,
	CR4GuestHostMask,
	CR0ReadShadow,
	CR4ReadShadow,
	CR3Target0,
	CR3Target1,
	CR3Target2,
	CR3Target3,
	VMCSExitQualification,
	IORCX,
	IORSI,
	IORDI,
	IORIP,
	GuestLinearAddress,
	GuestCR0,
	GuestCR3,
	GuestCR4,
	GuestESBase,
	GuestCSBase,
	GuestSSBase,
	GuestDSBase,
	GuestFSBase,
	GuestGSBase,
	GuestLDTRBase,
	GuestTRBase,
	GuestGDTRBase,
	GuestIDTRBase,
	GuestDR7,
	GuestRSP,
	GuestRIP,
	GuestRFLAGS,
	GuestPendingDebugExceptions,
	GuestSysenterESP,
	GuestSysenterEIP,
	HostCR0,
	HostCR3,
	HostCR4,
	HostFSBase,
	HostGSBase,
	HostTRBase,
	HostGDTRBase,
	HostIDTRBase,
	HostSysenterESP,
	HostSysenterEIP,
	HostRSP,
	HostRIP,
}
