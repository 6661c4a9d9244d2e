package sim

import (
	"fmt"

	"github.com/big-iron/big-iron/cluster/sched"
)

// Link describes one direction of a point-to-point path between two nodes
// (NIC, one switch hop, NIC).
type Link struct {
	Name string
	// GbitPerS is the line rate.
	GbitPerS float64
	// LatencyNS is the one-way per-frame latency excluding serialisation:
	// transmit and receive path of the NICs and their drivers, the switch's
	// port-to-port latency, and propagation.
	LatencyNS int64
}

// Ethernet framing overhead per frame on the wire, IEEE 802.3-2018 clause
// 3.1.1 and 4.4.2: preamble and SFD (8 bytes), MAC header (14), FCS (4),
// minimum inter-packet gap (12 byte times). Payloads shorter than 46 bytes
// are padded to 46 (clause 3.2.8).
const (
	frameOverhead   = 8 + 14 + 4 + 12
	minFramePayload = 46
)

// Link presets. Serialisation follows from the line rate (a 4 KiB page plus
// headers is 3.3 us at 10 Gb/s, 1.3 us at 25 Gb/s, 0.33 us at 100 Gb/s).
// The per-frame latencies are modelling assumptions built from published
// component figures:
//   - a cut-through data-centre switch adds about 0.2-0.3 us port to port
//     (e.g. Cisco Nexus 3548 validation report by Spirent, 2012, RFC 2544
//     latency of a few hundred ns; "Cut-Through and Store-and-Forward
//     Ethernet Switching for Low-Latency Environments", Cisco white paper);
//   - that white paper calls about 10 us end to end "ultra-low" for
//     Ethernet, and polled NIC drivers without a kernel stack reach a few us
//     at 10 GbE and 1-2 us on 100 GbE adapters (vendor perftest figures for
//     RoCE adapters are around 1 us).
//
// The hyperkernel drives its NIC with a polled driver in the same address
// space, so it sits near the low end: 5 us one way at 10 GbE (older NICs,
// interrupt moderation off), 2.5 us at 25 GbE, 1.5 us at 100 GbE.
var (
	Link10G  = Link{Name: "10GbE", GbitPerS: 10, LatencyNS: 5000}
	Link25G  = Link{Name: "25GbE", GbitPerS: 25, LatencyNS: 2500}
	Link100G = Link{Name: "100GbE", GbitPerS: 100, LatencyNS: 1500}
)

// Links returns the presets.
func Links() []Link { return []Link{Link10G, Link25G, Link100G} }

// LinkByName finds a preset by its Name.
func LinkByName(name string) (Link, error) {
	for _, l := range Links() {
		if l.Name == name {
			return l, nil
		}
	}
	return Link{}, fmt.Errorf("sim: unknown link %q (want 10GbE, 25GbE or 100GbE)", name)
}

// Costs estimates, for a move policy, the stall of a pull and of a move
// on l: a pull is a VM exit and its handling (1 us), a request frame and
// a 4 KiB page back; a move is the vCPU's stateSize bytes one way plus
// their save and restore (2 us).
func (l Link) Costs(stateSize int) sched.Costs {
	return sched.Costs{
		PullNS: 1000 + 2*l.LatencyNS + l.serialiseNS(64) + l.serialiseNS(4096+24),
		MoveNS: 2000 + l.LatencyNS + l.serialiseNS(stateSize+60),
	}
}

// wireBytes returns the bytes a frame with payload n occupies on the wire.
func wireBytes(n int) int {
	if n < minFramePayload {
		n = minFramePayload
	}
	return n + frameOverhead
}

// serialiseNS returns the time to put a frame with payload n on the wire.
func (l Link) serialiseNS(n int) int64 {
	return int64(float64(wireBytes(n)*8) / l.GbitPerS)
}
