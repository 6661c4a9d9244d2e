// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package dvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/vmm/guestmem"
)

// Channel is the cluster transport channel that carries a distributed
// VM's traffic: coherence messages (package memory, first byte
// memory.MessageMagic), vCPU migrations and interrupts (package migrate,
// migrate.MessageMagic), control messages and forwarded device accesses
// (this file). One channel keeps them in order per pair of nodes: a
// Create reaches a node before the coherence requests of the VM it
// creates, and a Start after the image is loaded.
const Channel uint8 = 2

// Magic bytes of this package's messages.
const (
	ControlMagic    = 0xB3
	DeviceMagic     = 0xB4
	DeviceReadMagic = 0xB5
	// EnvelopeMagic starts every message a Runtime sends (coherence,
	// migration, device): the VM's id follows, then the message.
	EnvelopeMagic = 0xB6
)

// ErrBadMessage reports undecodable bytes from a peer.
var ErrBadMessage = errors.New("dvm: malformed message")

// Op is a control operation.
type Op uint8

// Control operations.
const (
	// OpCreate asks a node to build its share of a VM (engine, frames,
	// second-level tables); no vCPU runs yet.
	OpCreate Op = 1
	// OpStart starts the vCPUs initially placed on the receiver.
	OpStart Op = 2
	// OpStop ends the VM on the receiver and frees its share; Arg says
	// why (a StopReason), and with StopNodeLost Node is the node the
	// sender found lost. A node sends it to the VM's other nodes when it
	// stops its share (the operator's `dvm stop`, or a lost node), and
	// again to a node that sends to a VM it stopped, so that no node of
	// the VM waits for a share that is gone.
	OpStop Op = 3
	// OpMigrate asks the node hosting VCPU to move it to Node.
	OpMigrate Op = 4
	// OpDone tells the other nodes the VM finished, with its outcome
	// word (Arg).
	OpDone Op = 5
	// OpEvacuate asks the receiver to give back every page copy it holds
	// but does not home (Modified ones are written back), once its vCPUs
	// have left.
	OpEvacuate Op = 6
	// OpStartup delivers a startup IPI (vector in Arg) to VCPU, an
	// application processor waiting for one on the receiver (Intel SDM
	// Vol. 3A, 9.4.4 "MP Initialization Example").
	OpStartup Op = 7
	// OpClock carries the sender's guest clock (Time, in TSC ticks) so
	// that the receiver can keep its own from falling behind: every
	// node's vCPUs must see one TSC.
	OpClock Op = 8
	// OpRoom asks the receiver how many of the pages of a VM shaped as
	// Spec (its nodes, vCPUs and pages) it could home: its free frames
	// less the VM's fixed cost there and MinCopyFrames. It answers with
	// OpRoomReply, Arg the pages and Virt its virtualization backend
	// (VirtUnknown from a node older than the field), for the same
	// Spec.ID.
	OpRoom      Op = 9
	OpRoomReply Op = 10
	// OpTakeHomes asks the receiver to take the homes of the pages the
	// sender, which is leaving the VM (Runtime.Leave), homes as far as
	// the receiver knows: it writes each (Runtime.TakeHomes).
	OpTakeHomes Op = 11
	// OpJoined tells the node that sent OpCreate that the sender has
	// built its share of the VM (Spec.ID): once every node has, the
	// creator loads the guest into the VM's memory (Plane.ExpectJoins).
	OpJoined Op = 12
	opLimit     = 13
)

// String names the operation.
func (o Op) String() string {
	switch o {
	case OpCreate:
		return "Create"
	case OpStart:
		return "Start"
	case OpStop:
		return "Stop"
	case OpMigrate:
		return "Migrate"
	case OpDone:
		return "Done"
	case OpEvacuate:
		return "Evacuate"
	case OpStartup:
		return "Startup"
	case OpClock:
		return "Clock"
	case OpRoom:
		return "Room"
	case OpRoomReply:
		return "RoomReply"
	case OpTakeHomes:
		return "TakeHomes"
	case OpJoined:
		return "Joined"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// StopReason says why a node stopped its share of a VM (OpStop's Arg).
// Nodes that do not know a reason take it as StopByOperator.
type StopReason uint32

// Stop reasons.
const (
	// StopByOperator: `dvm stop`, or a VM replaced by a new one. It is
	// what an OpStop without a reason (Arg 0) says.
	StopByOperator StopReason = 0
	// StopNodeLost: the sender found node Node of the VM lost
	// (NodeLostError).
	StopNodeLost StopReason = 1
	// StopNotCreated: the sender could not build its share of the VM
	// (OpCreate failed there; its console says why).
	StopNotCreated StopReason = 2
)

// Spec describes a distributed VM; every node builds its share from the
// same Spec.
type Spec struct {
	ID    uint32 // VM id, chosen by the creating node
	Nodes int    // nodes 0..Nodes-1 take part
	VCPUs int
	// Pages is the guest's RAM in 4 KiB pages, laid out as Split says:
	// below the MMIO hole, and above 4 GiB what does not fit under it.
	// The coherence protocol numbers the pages across the hole (page
	// index i is at Split().Addr(i)): its addresses are i*4 KiB, which
	// the Runtime translates to and from guest-physical ones.
	Pages int
	// Payload selects the guest program (hyperkernel-defined), Arg its
	// parameter (e.g. iterations).
	Payload uint32
	Arg     uint32
	// Homes places the pages' homes at the start; Place the vCPUs.
	Homes HomePolicy
	Place PlacePolicy
	// FirstTouch and MoveAfter move a page's home to the node that uses
	// it (memory.Config): to the first node that writes it, and to a
	// node that made MoveAfter requests for it in a row (0: never, at
	// most MaxMoveAfter).
	FirstTouch bool
	MoveAfter  uint8
	// WalkWindows lets a guest page-table walk that faults for write on
	// a page this node holds Shared go on in a walk window
	// (memory.Engine.OpenWindow) instead of taking the page Modified.
	WalkWindows bool
	// SmallPages maps the guest with 4 KiB pages only. Otherwise a
	// node maps a 2 MiB range with one large page while it holds all
	// of the range's pages with the same rights, in one run of frames
	// (as it does the ranges it homes until another node asks for one
	// of their pages): ept.PageMap.
	SmallPages bool
	// Shares are, with HomesFill, the pages each node homes, in node
	// order (node 0 the first Shares[0] pages, and so on): they sum to
	// Pages, and entries from Nodes on are zero. Other policies leave
	// them zero.
	Shares [memory.MaxNodes]uint32
	// Cores are the cores each node gives the VM's vCPUs, by node index,
	// as each told the creator (OpRoomReply), at most 255; 0 where
	// unknown (a node then counts its own). A balancer counts a node's
	// load against them.
	Cores [memory.MaxNodes]uint8
	// Dilation is the guest's time dilation: it is told its TSC runs
	// Dilation times faster than it does, so that its clock, timers and
	// watchdogs run that much slower against the network (1 or 0: none;
	// for emulators, whose network is slow against their CPU).
	Dilation uint8
	// Move says when a vCPU that faults on a page another node holds
	// moves there instead of fetching the page; Devices what a vCPU on
	// a node without the devices does when it touches one.
	Move    MovePolicy
	Devices DevicePolicy
	// Balance says whether and how the nodes move vCPUs for load, from
	// a node that runs more of them than it has cores.
	Balance BalancePolicy
}

// MovePolicy says when a vCPU goes to its data rather than the data to
// the vCPU (package sched).
type MovePolicy uint8

// Move policies.
const (
	// MovePull never moves vCPUs by itself: pages come to the vCPU
	// (GiantVM's way); vCPUs move only by hand (migrate, evacuate).
	MovePull MovePolicy = 0
	// MoveHysteresis moves a vCPU to the node that holds the pages it
	// keeps faulting on when those faults concentrate there and the
	// saving beats the cost by a margin (sched.Hysteresis, TidalScale's
	// idea).
	MoveHysteresis MovePolicy = 1
	// MoveAlways moves the vCPU on every fault on a page another node
	// holds (sched.AlwaysMove): the baseline that shows why a policy
	// needs hysteresis.
	MoveAlways MovePolicy = 2
	// MoveLearned decides with the learned model (sched.Learned,
	// sched.DefaultModel, fitted offline by tools/policytrain on the
	// simulator's workloads).
	MoveLearned MovePolicy = 3
	moveLimit   MovePolicy = 4
)

// names are the policy's values as the shell writes them, in order.
func (MovePolicy) names() []string { return []string{"pull", "hysteresis", "always", "learned"} }

// String names the policy as the shell does.
func (p MovePolicy) String() string { return policyName("MovePolicy", p.names(), p) }

// ParseMovePolicy returns the move policy the shell calls s.
func ParseMovePolicy(s string) (MovePolicy, error) {
	return parsePolicy[MovePolicy]("move", MovePolicy(0).names(), s)
}

// DevicePolicy says how a vCPU on a node without the devices reaches
// them.
type DevicePolicy uint8

// Device policies.
const (
	// DevicesForward forwards each access to the device node (reads
	// wait for the value): the vCPU stays where its memory is.
	DevicesForward DevicePolicy = 0
	// DevicesMove migrates the vCPU to the device node, where the
	// access runs locally (and the accesses after it: a driver's
	// register sequence costs one migration, not a round trip each).
	DevicesMove  DevicePolicy = 1
	devicesLimit DevicePolicy = 2
)

// names are the policy's values as the shell writes them, in order.
func (DevicePolicy) names() []string { return []string{"forward", "move"} }

// String names the policy as the shell does.
func (p DevicePolicy) String() string { return policyName("DevicePolicy", p.names(), p) }

// ParseDevicePolicy returns the device policy the shell calls s.
func ParseDevicePolicy(s string) (DevicePolicy, error) {
	return parsePolicy[DevicePolicy]("device", DevicePolicy(0).names(), s)
}

// BalancePolicy says how a node moves vCPUs for load (sched.Balancer):
// from a node that runs more of the VM's vCPUs than it has cores.
type BalancePolicy uint8

// Balance policies.
const (
	// BalanceNone moves no vCPU for load: vCPUs move by hand, by the
	// move policy, or for devices.
	BalanceNone BalancePolicy = 0
	// BalanceSpread moves vCPUs from busy nodes to nodes with a core
	// free, by load alone (sched.Spread).
	BalanceSpread BalancePolicy = 1
	// BalanceLearned decides with the learned model (sched.LearnedBalance,
	// sched.DefaultBalanceModel, fitted offline by tools/balancetrain):
	// it spreads vCPUs whose memory would follow and gathers those that
	// share it.
	BalanceLearned BalancePolicy = 2
	balanceLimit   BalancePolicy = 3
)

// names are the policy's values as the shell writes them, in order.
func (BalancePolicy) names() []string { return []string{"none", "spread", "learned"} }

// String names the policy as the shell does.
func (p BalancePolicy) String() string { return policyName("BalancePolicy", p.names(), p) }

// ParseBalancePolicy returns the balance policy the shell calls s.
func ParseBalancePolicy(s string) (BalancePolicy, error) {
	return parsePolicy[BalancePolicy]("balance", BalancePolicy(0).names(), s)
}

// PlacePolicy says where each vCPU starts.
type PlacePolicy uint8

// Placement policies.
const (
	// PlaceSpread starts vCPU v on node v % Nodes.
	PlaceSpread PlacePolicy = 0
	// PlaceDeviceNode starts every vCPU on node 0, next to the memory
	// an operating system boots from; they are spread later (by hand
	// or policy) with migrate.
	PlaceDeviceNode PlacePolicy = 1
	placeLimit      PlacePolicy = 2
)

// names are the policy's values as the shell writes them, in order.
func (PlacePolicy) names() []string { return []string{"spread", "node0"} }

// String names the policy as the shell does.
func (p PlacePolicy) String() string { return policyName("PlacePolicy", p.names(), p) }

// ParsePlacePolicy returns the placement policy the shell calls s.
func ParsePlacePolicy(s string) (PlacePolicy, error) {
	return parsePolicy[PlacePolicy]("placement", PlacePolicy(0).names(), s)
}

// Node returns the node vCPU v starts on in a VM of nodes nodes.
func (p PlacePolicy) Node(v migrate.VCPUID, nodes int) memory.NodeID {
	if p == PlaceDeviceNode {
		return 0
	}
	return memory.NodeID(int(v) % nodes)
}

// HomePolicy says which node is the home of each guest page.
type HomePolicy uint8

// Home policies.
const (
	// HomesStriped stripes pages over the nodes: page p's home is node
	// p % Nodes.
	HomesStriped HomePolicy = 0
	// HomesDeviceNode homes every page on node 0, the node that hosts the
	// devices and loads the guest: an operating system boots there at
	// local speed, and the other nodes hold copies of what their vCPUs
	// touch.
	HomesDeviceNode HomePolicy = 1
	// HomesFill homes contiguous ranges of pages, node 0's first, each
	// as large as Spec.Shares says: the node that starts the VM sizes
	// them by the room each node has (FillShares), so that a guest
	// larger than any one node fits, each node keeping the same part of
	// its memory for copies.
	HomesFill  HomePolicy = 2
	homesLimit HomePolicy = 3
)

// names are the policy's values as the shell writes them, in order.
func (HomePolicy) names() []string { return []string{"striped", "node0", "fill"} }

// String names the policy as the shell does.
func (h HomePolicy) String() string { return policyName("HomePolicy", h.names(), h) }

// ParseHomePolicy returns the home policy the shell calls s.
func ParseHomePolicy(s string) (HomePolicy, error) {
	return parsePolicy[HomePolicy]("home", HomePolicy(0).names(), s)
}

// Home returns the home function of the policy for a VM of nodes nodes.
// HomesFill needs the Spec's shares: use Spec.Home.
func (h HomePolicy) Home(nodes int) func(page uint64) memory.NodeID {
	if h == HomesDeviceNode {
		return func(uint64) memory.NodeID { return 0 }
	}
	n := uint64(nodes)
	return func(p uint64) memory.NodeID { return memory.NodeID(p % n) }
}

// Home returns the home function of the VM: the same on every node.
func (s *Spec) Home() func(page uint64) memory.NodeID {
	if s.Homes != HomesFill {
		return s.Homes.Home(s.Nodes)
	}
	// ends[i] is the first page after node i's range.
	ends := make([]uint64, s.Nodes)
	var sum uint64
	for i := range ends {
		sum += uint64(s.Shares[i])
		ends[i] = sum
	}
	last := memory.NodeID(s.Nodes - 1)
	return func(p uint64) memory.NodeID {
		lo, hi := 0, len(ends)-1
		for lo < hi {
			mid := (lo + hi) / 2
			if p < ends[mid] {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		return min(memory.NodeID(lo), last)
	}
}

// Split returns where the VM's RAM lies in guest-physical space.
func (s *Spec) Split() guestmem.Split {
	return guestmem.NewSplit(uint64(s.Pages) * memory.PageSize)
}

// Homed returns how many of the VM's pages each node homes.
func (s *Spec) Homed() []int {
	homed := make([]int, s.Nodes)
	switch s.Homes {
	case HomesDeviceNode:
		homed[0] = s.Pages
	case HomesFill:
		for i := range homed {
			homed[i] = int(s.Shares[i])
		}
	default:
		for i := range homed {
			homed[i] = s.Pages / s.Nodes
			if i < s.Pages%s.Nodes {
				homed[i]++
			}
		}
	}
	return homed
}

// policyName returns names[v], or v in Go syntax when it has no name.
func policyName[T ~uint8](typ string, names []string, v T) string {
	if int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, uint8(v))
}

// parsePolicy returns the value whose name in names is s.
func parsePolicy[T ~uint8](kind string, names []string, s string) (T, error) {
	for i, n := range names {
		if n == s {
			return T(i), nil
		}
	}
	return 0, fmt.Errorf("dvm: unknown %s policy %q: want %s", kind, s, strings.Join(names, ", "))
}

// Validate checks a Spec from a peer or the operator. With HomesFill
// its shares must be sized (Fit sizes them).
func (s *Spec) Validate() error {
	if err := s.ValidateRequest(); err != nil {
		return err
	}
	var sum uint64
	for _, n := range s.Shares {
		sum += uint64(n)
	}
	if s.Homes == HomesFill && sum != uint64(s.Pages) {
		return fmt.Errorf("dvm: homes=fill shares sum to %d pages, the VM has %d", sum, s.Pages)
	}
	return nil
}

// ValidateRequest checks a Spec as the operator asks for it, before Fit:
// as Validate, except that HomesFill's shares may still be unsized.
func (s *Spec) ValidateRequest() error {
	switch {
	case s.Nodes < 1 || s.Nodes > memory.MaxNodes:
		return fmt.Errorf("dvm: %d nodes, want 1..%d", s.Nodes, memory.MaxNodes)
	case s.VCPUs < 1 || s.VCPUs > MaxVCPUs:
		return fmt.Errorf("dvm: %d vCPUs, want 1..%d", s.VCPUs, MaxVCPUs)
	case s.Pages < 1 || s.Pages > MaxPages:
		return fmt.Errorf("dvm: %d pages, want 1..%d", s.Pages, MaxPages)
	case s.Homes >= homesLimit:
		return fmt.Errorf("dvm: unknown home policy %d", s.Homes)
	case s.MoveAfter > MaxMoveAfter:
		return fmt.Errorf("dvm: homes move after %d requests in a row, at most %d", s.MoveAfter, MaxMoveAfter)
	case s.Place >= placeLimit:
		return fmt.Errorf("dvm: unknown placement policy %d", s.Place)
	case s.Move >= moveLimit:
		return fmt.Errorf("dvm: unknown move policy %d", s.Move)
	case s.Devices >= devicesLimit:
		return fmt.Errorf("dvm: unknown device policy %d", s.Devices)
	case s.Balance >= balanceLimit:
		return fmt.Errorf("dvm: unknown balance policy %d", s.Balance)
	}
	for i, n := range s.Shares {
		if i >= s.Nodes && n != 0 || s.Homes != HomesFill && n != 0 {
			return fmt.Errorf("dvm: share of %d pages for node %d with homes=%v over %d nodes", n, i, s.Homes, s.Nodes)
		}
	}
	for i, n := range s.Cores[min(s.Nodes, len(s.Cores)):] {
		if n != 0 {
			return fmt.Errorf("dvm: %d cores for node %d of a VM over %d nodes", n, s.Nodes+i, s.Nodes)
		}
	}
	return nil
}

// Limits on a Spec.
const (
	// MaxMoveAfter bounds Spec.MoveAfter (three bits on the wire).
	MaxMoveAfter = 7
	MaxVCPUs     = 64
	// MaxPages bounds a VM's RAM, 4 GiB (3 GiB below the MMIO hole and
	// 1 GiB above 4 GiB): every node keeps the coherence state of every
	// page on its Go heap, on the order of 100 bytes a page.
	MaxPages = 1 << 20
)

// Control is one control message.
type Control struct {
	Op   Op
	Spec Spec           // OpCreate; Spec.ID names the VM for every op
	VCPU migrate.VCPUID // OpMigrate, OpStartup
	Node memory.NodeID  // OpMigrate: destination; OpStop: the lost node
	Arg  uint32         // OpDone: outcome; OpStartup: vector; OpStop: StopReason; OpRoomReply: pages
	Time uint64         // OpClock: the sender's guest TSC
	Virt Virt           // OpRoomReply: the sender's virtualization backend
	// Cores is, in OpRoomReply, how many cores the sender gives a VM's
	// vCPUs.
	Cores uint16
}

// Control wire format (little endian), ControlSize bytes, and for an
// OpCreate the Spec's shares after them if the VM has HomesFill (4 bytes
// per node), then its cores (1 byte per node):
//
//	0  magic (ControlMagic)
//	1  op
//	2  node (OpRoomReply: virtualization backend, Virt)
//	3  nodes
//	4  vm id (4)
//	8  vcpus (2)
//	10 vcpu (2) (OpRoomReply: cores)
//	12 pages (4)
//	16 payload (4)
//	20 arg (4)
//	24 home policy (bits 0-3), move after (bits 4-6), first touch (bit 7)
//	25 placement policy (bits 0-3), balance policy (bits 4-5), small pages (bit 6), walk windows (bit 7)
//	26 time dilation
//	27 move policy (bits 0-3), device policy (bits 4-7)
//	28 time (8)
//	36 shares (4 per node; OpCreate with HomesFill only)
//	   cores (1 per node; OpCreate only)
const ControlSize = 36

// MaxControlSize is the largest encoded control message.
const MaxControlSize = ControlSize + 5*memory.MaxNodes

// hasShares reports whether a message of op about a VM with home
// policy homes carries the shares.
func hasShares(op Op, homes HomePolicy) bool { return op == OpCreate && homes == HomesFill }

// MovesHomes reports whether the VM's homes move from where they start
// (FirstTouch or MoveAfter).
func (s *Spec) MovesHomes() bool { return s.FirstTouch || s.MoveAfter > 0 }

// Byte 24 of a control message: the home policy and when homes move.
const (
	homesMask      = 0x0F
	moveAfterShift = 4
	moveAfterMask  = 0x70
	firstTouchBit  = 0x80
)

// walkWindowsBit and smallPagesBit are Spec.WalkWindows and
// Spec.SmallPages in byte 25, beside the placement and balance policies.
const (
	walkWindowsBit = 0x80
	smallPagesBit  = 0x40
)

// Byte 25 of a control message also holds the placement policy (its low
// four bits) and the balance policy (the next two).
const (
	placeMask    = 0x0F
	balanceShift = 4
	balanceMask  = 0x30
)

// homesByte encodes the Spec's home policy and moves into byte 24.
func (s *Spec) homesByte() byte {
	b := byte(s.Homes)&homesMask | s.MoveAfter<<moveAfterShift&moveAfterMask
	if s.FirstTouch {
		b |= firstTouchBit
	}
	return b
}

// Size returns the encoded size of c.
func (c *Control) Size() int {
	return ControlSize + tailSize(c.Op, c.Spec.Homes, c.Spec.Nodes)
}

// tailSize is the size of what follows ControlSize bytes in a message of
// op about a VM of nodes nodes with home policy homes: an OpCreate's
// shares and cores.
func tailSize(op Op, homes HomePolicy, nodes int) int {
	n := 0
	if hasShares(op, homes) {
		n += 4 * nodes
	}
	if op == OpCreate {
		n += nodes
	}
	return n
}

// MarshalTo encodes c into b, which must hold c.Size() bytes, and
// returns the size.
func (c *Control) MarshalTo(b []byte) int {
	n := c.Size()
	_ = b[n-1]
	b[0], b[1], b[2], b[3] = ControlMagic, byte(c.Op), byte(c.Node), byte(c.Spec.Nodes)
	if c.Op == OpRoomReply {
		b[2] = byte(c.Virt) // a reply names no node
	}
	binary.LittleEndian.PutUint32(b[4:], c.Spec.ID)
	binary.LittleEndian.PutUint16(b[8:], uint16(c.Spec.VCPUs))
	binary.LittleEndian.PutUint16(b[10:], uint16(c.VCPU))
	if c.Op == OpRoomReply {
		binary.LittleEndian.PutUint16(b[10:], c.Cores) // a reply names no vCPU
	}
	binary.LittleEndian.PutUint32(b[12:], uint32(c.Spec.Pages))
	binary.LittleEndian.PutUint32(b[16:], c.Spec.Payload)
	binary.LittleEndian.PutUint32(b[20:], c.Arg)
	b[24], b[25], b[26] = c.Spec.homesByte(), byte(c.Spec.Place)&placeMask|byte(c.Spec.Balance)<<balanceShift&balanceMask, c.Spec.Dilation
	if c.Spec.WalkWindows {
		b[25] |= walkWindowsBit
	}
	if c.Spec.SmallPages {
		b[25] |= smallPagesBit
	}
	b[27] = byte(c.Spec.Move)&0xF | byte(c.Spec.Devices)<<4
	binary.LittleEndian.PutUint64(b[28:], c.Time)
	at := ControlSize
	if hasShares(c.Op, c.Spec.Homes) {
		for i := range c.Spec.Nodes {
			binary.LittleEndian.PutUint32(b[at:], c.Spec.Shares[i])
			at += 4
		}
	}
	if c.Op == OpCreate {
		copy(b[at:], c.Spec.Cores[:c.Spec.Nodes])
	}
	return n
}

// Unmarshal decodes and checks a control message.
func (c *Control) Unmarshal(b []byte) error {
	if len(b) < ControlSize || b[0] != ControlMagic {
		return fmt.Errorf("%w: control message of %d bytes", ErrBadMessage, len(b))
	}
	nodes := int(min(b[3], memory.MaxNodes))
	want := ControlSize + tailSize(Op(b[1]), HomePolicy(b[24]&homesMask), nodes)
	if len(b) != want {
		return fmt.Errorf("%w: %v control message of %d bytes, want %d", ErrBadMessage, Op(b[1]), len(b), want)
	}
	*c = Control{
		Op:   Op(b[1]),
		Node: memory.NodeID(b[2]),
		VCPU: migrate.VCPUID(binary.LittleEndian.Uint16(b[10:])),
		Arg:  binary.LittleEndian.Uint32(b[20:]),
		Time: binary.LittleEndian.Uint64(b[28:]),
		Spec: Spec{
			Homes:       HomePolicy(b[24] & homesMask),
			MoveAfter:   b[24] & moveAfterMask >> moveAfterShift,
			FirstTouch:  b[24]&firstTouchBit != 0,
			Place:       PlacePolicy(b[25] & placeMask),
			Balance:     BalancePolicy(b[25] & balanceMask >> balanceShift),
			WalkWindows: b[25]&walkWindowsBit != 0,
			SmallPages:  b[25]&smallPagesBit != 0,
			Dilation:    b[26],
			Move:        MovePolicy(b[27] & 0xF),
			Devices:     DevicePolicy(b[27] >> 4),
			ID:          binary.LittleEndian.Uint32(b[4:]),
			Nodes:       int(b[3]),
			VCPUs:       int(binary.LittleEndian.Uint16(b[8:])),
			Pages:       int(binary.LittleEndian.Uint32(b[12:])),
			Payload:     binary.LittleEndian.Uint32(b[16:]),
		},
	}
	if c.Op == 0 || c.Op >= opLimit {
		return fmt.Errorf("%w: control op %d", ErrBadMessage, b[1])
	}
	if c.Op == OpRoomReply {
		c.Node, c.Virt = 0, Virt(b[2])
		c.VCPU, c.Cores = 0, binary.LittleEndian.Uint16(b[10:])
	}
	at := ControlSize
	if hasShares(c.Op, c.Spec.Homes) {
		for i := range nodes {
			c.Spec.Shares[i] = binary.LittleEndian.Uint32(b[at:])
			at += 4
		}
	}
	if c.Op == OpCreate {
		copy(c.Spec.Cores[:nodes], b[at:])
	}
	if c.Node >= memory.MaxNodes {
		return fmt.Errorf("%w: node %d", ErrBadMessage, c.Node)
	}
	if c.Op == OpStartup && c.Arg > 0xFF {
		return fmt.Errorf("%w: startup vector %#x", ErrBadMessage, c.Arg)
	}
	if c.Op == OpCreate {
		if err := c.Spec.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
	}
	return nil
}

// DeviceWrite is a device write (port or MMIO) forwarded from a vCPU on
// one node to the node that hosts the device.
type DeviceWrite struct {
	VM    uint32
	VCPU  migrate.VCPUID
	MMIO  bool   // Addr is guest-physical, not a port
	Addr  uint64 // port (< 0x10000) or guest-physical address
	Size  uint8  // 1, 2 or 4 bytes; 8 for MMIO
	Value uint64
}

// DeviceSize is the encoded size of a DeviceWrite:
//
//	0  magic (DeviceMagic)
//	1  size
//	2  space: 0 port, 1 MMIO
//	3  zero
//	4  vm id (4)
//	8  vcpu (2)
//	10 zero (2)
//	12 address (8)
//	20 value (8)
const DeviceSize = 28

// MarshalTo encodes d into b, which must hold DeviceSize bytes.
func (d *DeviceWrite) MarshalTo(b []byte) int {
	_ = b[DeviceSize-1]
	b[0], b[1], b[2], b[3] = DeviceMagic, d.Size, space(d.MMIO), 0
	binary.LittleEndian.PutUint32(b[4:], d.VM)
	binary.LittleEndian.PutUint16(b[8:], uint16(d.VCPU))
	b[10], b[11] = 0, 0
	binary.LittleEndian.PutUint64(b[12:], d.Addr)
	binary.LittleEndian.PutUint64(b[20:], d.Value)
	return DeviceSize
}

// Unmarshal decodes and checks a forwarded device write.
func (d *DeviceWrite) Unmarshal(b []byte) error {
	if len(b) != DeviceSize || b[0] != DeviceMagic || b[3] != 0 || b[10] != 0 || b[11] != 0 {
		return fmt.Errorf("%w: device write of %d bytes", ErrBadMessage, len(b))
	}
	*d = DeviceWrite{
		Size:  b[1],
		VM:    binary.LittleEndian.Uint32(b[4:]),
		VCPU:  migrate.VCPUID(binary.LittleEndian.Uint16(b[8:])),
		Addr:  binary.LittleEndian.Uint64(b[12:]),
		Value: binary.LittleEndian.Uint64(b[20:]),
	}
	var err error
	d.MMIO, err = checkAccess(b[2], d.Addr, d.Size)
	return err
}

// space encodes an address space.
func space(mmio bool) byte {
	if mmio {
		return 1
	}
	return 0
}

// checkAccess checks the address space, address and size of a device
// access and reports whether it is MMIO.
func checkAccess(sp byte, addr uint64, size uint8) (bool, error) {
	switch {
	case sp > 1:
		return false, fmt.Errorf("%w: device address space %d", ErrBadMessage, sp)
	case size != 1 && size != 2 && size != 4 && (size != 8 || sp == 0):
		return false, fmt.Errorf("%w: device access of %d bytes", ErrBadMessage, size)
	case sp == 0 && addr > 0xFFFF:
		return false, fmt.Errorf("%w: port %#x", ErrBadMessage, addr)
	}
	return sp == 1, nil
}

// DeviceRead is a device read (port or MMIO) forwarded from a vCPU on one
// node to the node that hosts the device (a request), or the value read
// (a reply). A vCPU waits for its read, so it has at most one
// outstanding; Seq tells a reply to which read it answers.
type DeviceRead struct {
	VM    uint32
	VCPU  migrate.VCPUID
	MMIO  bool
	Addr  uint64
	Size  uint8
	Seq   uint8
	Reply bool
	Value uint64 // replies
}

// DeviceReadSize is the encoded size of a DeviceRead:
//
//	0  magic (DeviceReadMagic)
//	1  kind: 1 request, 2 reply
//	2  space: 0 port, 1 MMIO
//	3  size
//	4  vm id (4)
//	8  vcpu (2)
//	10 seq
//	11 zero
//	12 address (8)
//	20 value (8), zero in a request
const DeviceReadSize = 28

// MarshalTo encodes d into b, which must hold DeviceReadSize bytes.
func (d *DeviceRead) MarshalTo(b []byte) int {
	_ = b[DeviceReadSize-1]
	b[0], b[1], b[2], b[3] = DeviceReadMagic, 1, space(d.MMIO), d.Size
	if d.Reply {
		b[1] = 2
	}
	binary.LittleEndian.PutUint32(b[4:], d.VM)
	binary.LittleEndian.PutUint16(b[8:], uint16(d.VCPU))
	b[10], b[11] = d.Seq, 0
	binary.LittleEndian.PutUint64(b[12:], d.Addr)
	binary.LittleEndian.PutUint64(b[20:], d.Value)
	return DeviceReadSize
}

// Unmarshal decodes and checks a forwarded device read or its reply.
func (d *DeviceRead) Unmarshal(b []byte) error {
	if len(b) != DeviceReadSize || b[0] != DeviceReadMagic || b[11] != 0 {
		return fmt.Errorf("%w: device read of %d bytes", ErrBadMessage, len(b))
	}
	if k := b[1]; k != 1 && k != 2 {
		return fmt.Errorf("%w: device read kind %d", ErrBadMessage, k)
	}
	*d = DeviceRead{
		Reply: b[1] == 2,
		Size:  b[3],
		VM:    binary.LittleEndian.Uint32(b[4:]),
		VCPU:  migrate.VCPUID(binary.LittleEndian.Uint16(b[8:])),
		Seq:   b[10],
		Addr:  binary.LittleEndian.Uint64(b[12:]),
		Value: binary.LittleEndian.Uint64(b[20:]),
	}
	var err error
	if d.MMIO, err = checkAccess(b[2], d.Addr, d.Size); err != nil {
		return err
	}
	if !d.Reply && d.Value != 0 {
		return fmt.Errorf("%w: device read request with a value", ErrBadMessage)
	}
	return nil
}

// EnvelopeSize is the room a Runtime's message needs before its body:
// EnvelopeMagic and the VM id (little-endian). Messages of an earlier VM
// still in flight when a new one starts (a link that came back, a node
// that restarted it) carry that VM's id and are dropped on arrival.
const EnvelopeSize = 5

// putEnvelope writes the envelope of VM id into b[:EnvelopeSize].
func putEnvelope(b []byte, id uint32) {
	b[0] = EnvelopeMagic
	binary.LittleEndian.PutUint32(b[1:], id)
}

// envelopeID returns the VM id of an enveloped message.
func envelopeID(msg []byte) (uint32, bool) {
	if len(msg) < EnvelopeSize || msg[0] != EnvelopeMagic {
		return 0, false
	}
	return binary.LittleEndian.Uint32(msg[1:]), true
}

// openEnvelope returns the body of msg if it is enveloped for VM id.
func openEnvelope(msg []byte, id uint32) ([]byte, bool) {
	if len(msg) < EnvelopeSize || msg[0] != EnvelopeMagic || binary.LittleEndian.Uint32(msg[1:]) != id {
		return nil, false
	}
	return msg[EnvelopeSize:], true
}
