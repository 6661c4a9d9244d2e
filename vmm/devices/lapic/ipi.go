// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package lapic

import "github.com/big-iron/big-iron/vmm/vcpu"

// send delivers the IPI of an ICR write from src, or a device's interrupt
// message when src is nil (SDM Vol. 3A, 11.6.1). icr is in x2APIC form:
// the destination is the 32-bit field in bits 63:32 (11.12.9); an xAPIC
// sender's 8-bit destination is there, its broadcast widened to
// 0xFFFFFFFF (see writeICRLocked). Each APIC judges the destination in
// its own mode (see addressed). It runs with no APIC's lock held.
func (b *Bus) send(src *LAPIC, icr uint64) {
	vec := uint8(icr & icrVector)
	mode := icr >> icrDeliveryShift & 7
	level := icr&icrTriggerLevel != 0
	for i, dst := range b.apics {
		if !dst.addressed(src, icr) {
			continue
		}
		if b.remote != nil && b.remote.Elsewhere(i) {
			b.remote.Send(i, uint8(mode), vec)
			continue
		}
		switch mode {
		case deliveryFixed, deliveryLowest:
			dst.Deliver(vec, level)
		case deliveryNMI:
			dst.events.NMI()
		case deliveryINIT:
			if icr&icrLevelAssert != 0 || !level {
				dst.events.INIT()
			}
		case deliveryStartup:
			dst.events.Startup(vec)
		}
	}
}

// addressed reports whether the APIC takes the message icr from src
// (nil for a device): the shorthand (11.6.1) or the destination picks
// it, and a globally disabled APIC takes nothing (11.4.3).
func (a *LAPIC) addressed(src *LAPIC, icr uint64) bool {
	switch icr & icrShorthand {
	case shorthandSelf:
		if a != src {
			return false
		}
	case shorthandOthers:
		if a == src {
			return false
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	dest, logical := uint32(icr>>32), icr&icrDestLogical != 0
	switch m := a.modeLocked(); {
	case m == ModeDisabled:
		return false
	case icr&icrShorthand != shorthandNone:
		return true
	case m == ModeXAPIC:
		return a.matchesXAPICLocked(dest, logical)
	}
	return a.matchesX2APICLocked(dest, logical)
}

// matchesX2APICLocked reports whether an x2APIC is addressed by dest
// (SDM Vol. 3A, 11.12.9): physical, its 32-bit ID; logical, cluster in
// bits 31:16 and a bit mask of the cluster's members in bits 15:0
// (11.12.10.2); 0xFFFFFFFF broadcasts. A device's 8-bit destination is
// compared as it is.
func (a *LAPIC) matchesX2APICLocked(dest uint32, logical bool) bool {
	if dest == uint32(x2Broadcast) {
		return true
	}
	if !logical {
		return dest == a.s.ID
	}
	ldr := a.s.LDR
	return dest>>16 == ldr>>16 && dest&ldr&0xFFFF != 0
}

// matchesXAPICLocked reports whether an xAPIC is addressed by the 8-bit
// dest (SDM Vol. 3A, 11.6.2): 0xFF broadcasts in both destination modes
// (11.6.2.1, 11.6.2.2), as does an x2APIC sender's 0xFFFFFFFF; any other
// destination beyond 8 bits (a sender in the other mode, which the
// architecture does not support) addresses no xAPIC. Physical: the ID.
// Logical, by the DFR's model: flat, the LDR's bits 31:24 are a bit mask
// ANDed with dest; cluster, dest's high nibble is the cluster and its low
// nibble a mask of its members (11.6.2.2, Figures 11-13 and 11-14).
func (a *LAPIC) matchesXAPICLocked(dest uint32, logical bool) bool {
	switch {
	case dest == uint32(xBroadcast), dest == uint32(x2Broadcast):
		return true
	case dest > uint32(xBroadcast):
		return false
	case !logical:
		return dest == a.s.ID
	}
	id := a.s.LDR >> 24
	if a.s.DFR == vcpu.DFRCluster {
		return dest>>4 == id>>4 && dest&id&0xF != 0
	}
	return dest&id != 0
}

// SetEOIHandler sets the function called when a level-triggered vector is
// ended, so the IOAPIC can clear its remote IRR.
func (b *Bus) SetEOIHandler(f func(vector uint8)) { b.eoi = f }

// Interrupt delivers an interrupt message from a device (the IOAPIC, or
// an MSI): delivery mode mode (fixed, lowest priority, NMI, INIT) and
// vector to the APICs dest names, physical or logical, edge or level
// triggered (SDM Vol. 3A, 11.6.2 "Determining IPI Destination"). Each
// APIC matches dest in its own mode: an xAPIC takes it as 8 bits with
// 0xFF the broadcast, an x2APIC as 32 bits (see addressed).
func (b *Bus) Interrupt(dest uint32, logical bool, mode, vector uint8, level bool) {
	icr := uint64(vector) | uint64(mode&7)<<icrDeliveryShift | uint64(dest)<<32 | icrLevelAssert
	if logical {
		icr |= icrDestLogical
	}
	if level {
		icr |= icrTriggerLevel
	}
	b.send(nil, icr)
}
