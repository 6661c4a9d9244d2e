// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package hv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/big-iron/big-iron/cluster/dvm"
	"github.com/big-iron/big-iron/cluster/membership"
	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/cluster/migrate"
	"github.com/big-iron/big-iron/cluster/trace"
	"github.com/big-iron/big-iron/vmm/devices/mmio"
	"github.com/big-iron/big-iron/vmm/ept"
	"github.com/big-iron/big-iron/vmm/exits"
	"github.com/big-iron/big-iron/vmm/guestmem"
	"github.com/big-iron/big-iron/vmm/runloop"
	"github.com/big-iron/big-iron/vmm/svm"
	"github.com/big-iron/big-iron/vmm/testguest"
	"github.com/big-iron/big-iron/vmm/vcpu"
	"github.com/big-iron/big-iron/vmm/vmx"
)

// distPages is the guest memory of a distributed test VM (4 MiB).
const distPages = 1024

// distMapCells is the size of the page map `pages map` prints.
const distMapCells = 1024

// DistNet is the cluster as a distributed VM sees it (Self, ClusterID and
// Index are called in the receive path, so they must not reach the
// transport): this node's index,
// the live members' indexes, reliable ordered delivery on dvm.Channel,
// and the translation between a VM's node indexes (0..n-1) and cluster
// node ids, which the shell shows.
type DistNet interface {
	Self() memory.NodeID
	Members() []memory.NodeID
	Send(to memory.NodeID, msg []byte) error
	// TrySend is Send without the wait for room in the peer's window
	// (dvm.PlaneConfig.TrySend): false, and nothing sent, when it is
	// full.
	TrySend(to memory.NodeID, msg []byte) (bool, error)
	ClusterID(memory.NodeID) uint32
	Index(clusterID uint32) (memory.NodeID, bool)
	// Lost reports whether a node is gone as this node sees it (silent
	// for longer than silence, or removed) and why; quorum or not.
	Lost(n memory.NodeID, silence time.Duration) (why string, lost bool)
	// Poll takes in what the NIC holds now (dvm.Config.Poll): a vCPU
	// that waits for a page polls instead of waiting for the NIC's
	// receive loop, which sleeps 0.1-1 ms between polls.
	Poll() bool
}

// Dist runs this node's share of distributed VMs (one at a time): it
// builds second-level tables and VMCSs for the vCPUs placed here, drives
// them, and serves the VM's traffic. Its Receive takes dvm.Channel
// messages from the cluster transport.
type Dist struct {
	h       *Hypervisor
	net     DistNet
	notices io.Writer
	// linux builds the configuration of the image's Linux guest; nil
	// where the image has none.
	linux func(r LinuxRequest) (LinuxConfig, error)
	// plane serves the VM's control messages and holds this node's
	// share of it (a *distVM).
	plane *dvm.Plane
	// trace records the VMs' events while it is on (nil: never).
	trace *trace.Ring
}

// SetTrace gives the service the node's event ring: the VMs it creates
// from now on record into it while it is on.
func (d *Dist) SetTrace(r *trace.Ring) { d.trace = r }

// SetLinux gives the service the image's Linux guest: config builds a
// guest's configuration (with its loader, and an Open for its disks and
// network card) for `dvm start guest=linux`, or says why it cannot.
func (d *Dist) SetLinux(config func(r LinuxRequest) (LinuxConfig, error)) {
	d.linux = config
}

// payloadLinux is the dvm.Spec payload of an operating-system guest
// (the image's Linux); smaller payloads are test guests.
const payloadLinux = 0x4C4E5800 // "\0XNL"

// osName is how progress and notices name an operating-system guest
// of LinuxConfig.Name: Linux, or a Multiboot kernel.
func osName(name string) string {
	if name == "multiboot" {
		return "the Multiboot kernel"
	}
	return "Linux"
}

// linuxArgMultiboot, in the spec's Arg of an operating-system guest,
// says it is a Multiboot kernel, whose APICs power on in xAPIC mode:
// every node makes its share's APICs so, since a vCPU may first run on
// any of them.
const linuxArgMultiboot = 1

// NewDist returns the distributed-VM service of h over net; notices get
// one line when a VM ends.
func (h *Hypervisor) NewDist(net DistNet, notices io.Writer) *Dist {
	d := &Dist{h: h, net: net, notices: notices}
	d.plane = dvm.NewPlane(dvm.PlaneConfig{Host: d, Send: net.Send, TrySend: net.TrySend, ClusterID: net.ClusterID, Notices: notices})
	return d
}

// distVM is this node's share of one distributed VM.
type distVM struct {
	d       *Dist
	spec    dvm.Spec
	rt      *dvm.Runtime
	frames  *distFrames // the frames of its pages
	tab     *ept.Table
	perm    *eptPerm
	ctl     vmx.Controls
	setup   []vmx.FieldValue // shared VMCS fields (bitmaps, timer)
	svmMaps uint64           // on AMD-V: the I/O and MSR permission maps (a 2 MiB run)
	owned   []uint64
	created time.Time
	// built is how long create took, set before the share runs.
	built time.Duration

	port    debugPort // the debug port, on the device node (0)
	stop    atomic.Bool
	wg      sync.WaitGroup
	moveTo  [dvm.MaxVCPUs]atomic.Int32 // destination+1, 0 if none
	vstate  [dvm.MaxVCPUs]atomic.Int32 // VCPUState of vCPUs here
	outcome atomic.Pointer[string]
	// kick wakes a halted vCPU when an interrupt becomes pending for it.
	kick [dvm.MaxVCPUs]chan struct{}
	// scratch is the debug device's MMIO scratch register (node 0),
	// under the runtime's lock.
	scratch uint32
	// ipis counts the IPIs this node's vCPUs sent, startups their
	// startup IPIs, ipisIgnored those to vCPUs that do not exist.
	ipis, startups, ipisIgnored atomic.Uint64
	// deviceIRQs counts the interrupts the debug device raised (node 0).
	deviceIRQs atomic.Uint64
	// walkFaults counts faults on this node during the guest's own
	// page-table walks, walkWrites those that asked to write.
	walkFaults, walkWrites atomic.Uint64
	// exits holds each vCPU's exit counts as of its latest time slice,
	// under rt's lock; gone holds those of vCPUs that left this node.
	exits [dvm.MaxVCPUs]exits.ExitStats
	gone  exits.ExitStats
	// linux is the share of an operating-system guest (payloadLinux),
	// ld what it needs to span nodes; both nil for a test guest.
	linux *LinuxVM
	ld    *linuxDist
}

// Plane is the VM's control plane, which takes the messages on
// dvm.Channel.
func (d *Dist) Plane() *dvm.Plane { return d.plane }

// Create makes this node's share of a VM node from created (dvm.Host).
func (d *Dist) Create(from memory.NodeID, spec dvm.Spec) (dvm.Share, error) {
	vm, err := d.create(spec, nil)
	if err != nil {
		return nil, err
	}
	return vm, nil
}

// Room returns how many pages of a VM shaped as spec this node could
// home now (dvm.Host): its free frames less the share's fixed cost and
// dvm.MinCopyFrames.
func (d *Dist) Room(spec dvm.Spec) int {
	inUse, total := d.h.pool.Stats()
	return distRoom(spec, inUse, total)
}

// Virt returns this node's virtualization backend (dvm.Host): a VM's
// nodes must all use one.
func (d *Dist) Virt() dvm.Virt { return distVirt(d.h.svmCaps != nil) }

// Cores implements dvm.Host: every core of the node runs a VM's vCPUs.
func (d *Dist) Cores() int { return d.h.NumCores() }

// current returns this node's share of the VM, nil if none.
func (d *Dist) current() *distVM {
	vm, _ := d.plane.Current().(*distVM)
	return vm
}

var _ dvm.Share = (*distVM)(nil)

// Spec describes the VM (dvm.Share).
func (vm *distVM) Spec() dvm.Spec { return vm.spec }

// Runtime is this node's share of the VM's protocol (dvm.Share).
func (vm *distVM) Runtime() *dvm.Runtime { return vm.rt }

// Start runs the vCPUs placed here (dvm.Share).
func (vm *distVM) Start() { vm.startLocal() }

// Migrate asks vCPU v to move to node (dvm.Share).
func (vm *distVM) Migrate(v migrate.VCPUID, node memory.NodeID) error {
	return vm.requestMove(int(v), int(node))
}

// Done records that the guest finished, as node from reports.
func (vm *distVM) Done(from memory.NodeID, ok bool) {
	s := fmt.Sprintf("finished on node %d (guest report %s)", vm.d.net.ClusterID(from), map[bool]string{true: "ok", false: "failed"}[ok])
	vm.outcome.CompareAndSwap(nil, &s)
}

// Evacuate moves this node's vCPUs away (dvm.Share).
func (vm *distVM) Evacuate() { go vm.evacuateHere() } // it waits for the vCPUs to leave

// TakeHomes takes the homes of node from, which is leaving (dvm.Share).
func (vm *distVM) TakeHomes(from memory.NodeID) { go vm.takeHomes(from) } // it waits for the pages

// takeHomes takes the homes of node from, which is leaving, and says
// how many it took.
func (vm *distVM) takeHomes(from memory.NodeID) {
	taken, left, err := vm.rt.TakeHomes(from)
	id := vm.d.net.ClusterID(from)
	switch {
	case err != nil:
		fmt.Fprintf(vm.d.notices, "dvm %d: taking the homes of node %d: %v (%d taken)\n", vm.spec.ID, id, err, taken)
	case left > 0:
		fmt.Fprintf(vm.d.notices, "dvm %d: took the homes of %d pages from node %d, which leaves; %d stay there: no room here\n", vm.spec.ID, taken, id, left)
	default:
		fmt.Fprintf(vm.d.notices, "dvm %d: took the homes of %d pages from node %d, which leaves\n", vm.spec.ID, taken, id)
	}
}

// Startup delivers a startup IPI, h holding the runtime's lock.
func (vm *distVM) Startup(h *dvm.Handle, v migrate.VCPUID, vector uint8) {
	vm.startupLocked(h, int(v), vector)
}

// Clock takes another node's guest TSC (Linux guests keep theirs in
// step).
func (vm *distVM) Clock(t uint64) {
	if vm.ld != nil {
		vm.ld.observeClock(t)
	}
}

// End stops the VM on this node (dvm.Share).
func (vm *distVM) End(why string) { vm.end(why) }

// Start creates a distributed VM with this node as node 0, loads its
// guest (a test guest, or with req.Linux the image's Linux) and starts it
// everywhere.
func (d *Dist) Start(req DistStart, progress io.Writer) (dvm.Spec, error) {
	self := d.net.Self()
	if self != 0 {
		return dvm.Spec{}, fmt.Errorf("start it on cluster node %d (this is node %d): that node hosts the VM's devices", d.net.ClusterID(0), d.net.ClusterID(self))
	}
	members := d.net.Members()
	nodes := req.Nodes
	if nodes == 0 {
		nodes = len(members)
	}
	for n := 0; n < nodes; n++ {
		found := false
		for _, m := range members {
			found = found || int(m) == n
		}
		if !found {
			return dvm.Spec{}, fmt.Errorf("cluster node %d is not a live member: a VM of %d nodes needs nodes 1..%d", d.net.ClusterID(memory.NodeID(n)), nodes, nodes)
		}
	}
	spec, linux, err := d.newSpec(req, nodes)
	if err != nil {
		return spec, err
	}
	if old := d.plane.Take(); old != nil {
		old.End("replaced")
	}
	rooms, err := d.plane.Rooms(self, spec, dvm.RoomTimeout)
	if err == nil {
		err = dvm.Fit(&spec, rooms, d.net.ClusterID)
	}
	if err == nil {
		err = spec.Validate()
	}
	if err != nil {
		return spec, err
	}
	if linux != nil && req.NUMA && spec.Homes == dvm.HomesFill {
		linux.NUMA = DistNUMAFill(spec.VCPUs, spec.Split(), spec.Shares[:spec.Nodes])
	}
	vm, err := d.create(spec, linux)
	if err != nil {
		return spec, err
	}
	d.plane.Install(vm, "replaced")
	fmt.Fprintf(progress, "dvm %d: this node's share is ready; asking %d other nodes to join\n", spec.ID, nodes-1)
	joins := d.plane.ExpectJoins(spec)
	if err := vm.broadcast(dvm.Control{Op: dvm.OpCreate, Spec: spec}); err != nil {
		return spec, d.abort(vm, err)
	}
	// The others build their shares off their receive paths; the VM's
	// traffic waits until they have (a node that builds gigabytes of
	// homes in Bochs takes longer than the VM lets a node stay silent).
	if err := joins.Wait(self, dvm.JoinTimeout, vm.rt.Err); err != nil {
		return spec, d.abort(vm, err)
	}
	if linux != nil {
		fmt.Fprintf(progress, "dvm %d: loading %s into the VM's memory through the coherence protocol (pages homed %v)\n", spec.ID, osName(linux.Name), spec.Homes)
		err = vm.linux.load()
	} else {
		fmt.Fprintf(progress, "dvm %d: loading the guest through the coherence protocol\n", spec.ID)
		err = vm.loadTestGuest(req)
	}
	if err != nil {
		return spec, d.abort(vm, err)
	}
	if linux == nil {
		fmt.Fprintf(progress, "dvm %d: guest loaded; starting the vCPUs\n", spec.ID)
	}
	if err := vm.broadcast(dvm.Control{Op: dvm.OpStart, Spec: spec}); err != nil {
		return spec, d.abort(vm, err)
	}
	vm.startLocal()
	return spec, nil
}

// abort undoes a start that failed after this node's share of vm was
// installed: the other nodes are told to stop theirs (some may have
// built one), and this node's share ends, its frames going back. It
// returns err.
func (d *Dist) abort(vm *distVM, err error) error {
	if d.plane.Current() == dvm.Share(vm) {
		d.plane.Take()
	}
	_ = vm.broadcast(dvm.Control{Op: dvm.OpStop})
	vm.end(err.Error())
	return clusterNamed(err, d.net.ClusterID)
}

// newSpec describes the VM req asks for on nodes nodes, with the
// configuration of its Linux guest if it runs one.
func (d *Dist) newSpec(req DistStart, nodes int) (dvm.Spec, *LinuxConfig, error) {
	vcpus := req.VCPUs
	if vcpus == 0 {
		vcpus = nodes
	}
	spec := dvm.Spec{ID: rand.Uint32()>>8 | 1, Nodes: nodes, VCPUs: vcpus, Pages: distPages,
		Payload: uint32(req.Guest), Arg: uint32(req.Iterations), Move: req.Move, Devices: req.Devices, Balance: req.Balance, Place: req.Place,
		FirstTouch: req.FirstTouch, MoveAfter: uint8(min(req.MoveAfter, dvm.MaxMoveAfter+1)), WalkWindows: req.WalkWindows,
		SmallPages: req.SmallPages}
	var linux *LinuxConfig
	if req.Linux {
		if d.linux == nil {
			return spec, nil, errors.New("this image has no Linux guest: build it with GUEST=linux")
		}
		mem := req.Memory
		if mem == 0 {
			mem = DefaultGuestMemory
		}
		if err := checkDistMemory(mem); err != nil {
			return spec, nil, err
		}
		cfg, err := d.linux(LinuxRequest{VCPUs: vcpus, Memory: mem, Cmdline: req.Cmdline, NUMA: req.NUMA,
			Disks: req.Disks, Net: req.Net, Root: req.Root, Boot: req.Boot, Multiboot: req.Multiboot, Dilation: req.Dilation})
		if err != nil {
			return spec, nil, err
		}
		linux = &cfg
		spec.Payload, spec.Arg, spec.Pages, spec.Homes, spec.Place = payloadLinux, 0, int(mem/memory.PageSize), dvm.HomesDeviceNode, req.Place
		if req.Multiboot {
			spec.Arg = linuxArgMultiboot
		}
		if req.Homes != "" {
			homes, err := dvm.ParseHomePolicy(req.Homes)
			if err != nil {
				return spec, nil, err
			}
			spec.Homes = homes
		}
		if req.Dilation > 255 {
			return spec, nil, fmt.Errorf("dvm: time dilation %d: at most 255", req.Dilation)
		}
		spec.Dilation = uint8(req.Dilation)
		linux.Dilation = req.Dilation
		if req.NUMA {
			switch spec.Homes {
			case dvm.HomesDeviceNode:
				linux.NUMA = DistNUMA(vcpus, nodes, mem)
			case dvm.HomesFill:
				// Start gives each domain its node's range once the
				// nodes' rooms have sized them.
			default:
				return spec, nil, errors.New("dvm: numa=on needs homes=node0 or homes=fill: an SRAT describes ranges of memory, not pages striped over the nodes")
			}
		}
	}
	return spec, linux, spec.ValidateRequest()
}

// loadTestGuest writes the test guest req asks for and its parameters
// into the VM's memory through the coherence protocol.
func (vm *distVM) loadTestGuest(req DistStart) error {
	img, err := testguest.Build(req.Guest)
	if err != nil {
		return err
	}
	var params [8]byte
	binary.LittleEndian.PutUint32(params[0:], uint32(vm.spec.VCPUs))
	binary.LittleEndian.PutUint32(params[4:], uint32(req.Iterations))
	if err := vm.rt.Write(testguest.LoadAddress, img.Bytes); err != nil {
		return fmt.Errorf("dvm: loading the guest: %w", err)
	}
	if err := vm.rt.Write(testguest.ParamVCPUs, params[:]); err != nil {
		return fmt.Errorf("dvm: writing the guest's parameters: %w", err)
	}
	return nil
}

// broadcast sends control message c to the VM's other nodes.
func (vm *distVM) broadcast(c dvm.Control) error { return vm.d.plane.Broadcast(vm, c) }

// eptPerm drives the VM's EPT from the coherence engine: readable pages
// are mapped read/execute, writable ones read/write/execute, to this
// node's frame holding the page; a 2 MiB range held whole in one run of
// frames (the ranges this node homes, until another node asks for one of
// their pages) with one large page, unless the VM asks for small pages
// (ept.PageMap).
type eptPerm struct {
	tab   *ept.Table
	pages *ept.PageMap
	err   error
	// tables is tab.Tables() after the latest mapping, and large,
	// promotions and splits the page map's Stats, for Status, which
	// must not touch tab: the share frees it when it ends, and `dvm
	// stat` of a VM that stopped read a nil table and crashed the node
	// (TestBochsCluster, after node 2 was killed).
	tables                    atomic.Int64
	large, promotions, splits atomic.Uint64
}

// newEPTPerm returns the permissions of a VM laid out as split over tab.
func newEPTPerm(tab *ept.Table, split guestmem.Split, largePages bool) *eptPerm {
	return &eptPerm{tab: tab, pages: ept.NewPageMap(tab, split, ept.WriteBack, largePages)}
}

func (p *eptPerm) SetAccess(gpa uint64, f *memory.Page, a memory.Access) {
	hpa := uint64(0)
	if f != nil {
		hpa = uint64(uintptr(unsafe.Pointer(f)))
	}
	perm := ept.Perm(0)
	switch a {
	case memory.AccessRead:
		perm = ept.PermRX
	case memory.AccessReadWrite:
		perm = ept.PermRWX
	}
	if err := p.pages.Set(gpa, hpa, perm); err != nil {
		p.fail(fmt.Errorf("EPT: %w", err))
	}
	s := p.pages.Stats()
	p.large.Store(s.Large)
	p.promotions.Store(s.Promotions)
	p.splits.Store(s.Splits)
	p.tables.Store(int64(p.tab.Tables()))
}

// largePages returns what the page map did with large pages.
func (p *eptPerm) largePages() ept.PageMapStats {
	return ept.PageMapStats{Large: p.large.Load(), Promotions: p.promotions.Load(), Splits: p.splits.Load()}
}

func (p *eptPerm) fail(err error) {
	if p.err == nil {
		p.err = err
	}
}

// create builds this node's share of spec; linux is the guest's
// configuration on the node that loads an operating system (nil
// elsewhere).
func (d *Dist) create(spec dvm.Spec, linux *LinuxConfig) (*distVM, error) {
	h := d.h
	if err := checkDistPayload(spec); err != nil {
		return nil, err
	}
	inUse, total := h.pool.Stats()
	if err := checkDistRoom(spec, d.net.Self(), inUse, total); err != nil {
		return nil, err
	}
	vm := &distVM{d: d, spec: spec, created: time.Now()}
	for i := range vm.kick {
		vm.kick[i] = make(chan struct{}, 1)
	}
	alloc := func() (uint64, error) {
		f, err := h.zeroFrame()
		if err == nil {
			vm.owned = append(vm.owned, f)
		}
		return f, err
	}
	tab, err := ept.New(ept.Config{Mem: directMap{}, Alloc: framePool{h}, Invalidator: flushOnLoad{}, Caps: h.eptc, Reserved: h.reserved, Format: h.format})
	if err != nil {
		return nil, fmt.Errorf("hv: EPT: %w", err)
	}
	vm.tab = tab
	vm.perm = newEPTPerm(tab, spec.Split(), !spec.SmallPages)
	if h.svmCaps != nil {
		vm.svmMaps, err = h.svmPermissionMaps()
	} else {
		vm.setup, err = h.commonFields(alloc, testPassedMSRs[:1])
		if err == nil {
			vm.ctl, err = h.guestControls(vmx.Controls{})
		}
	}
	if err != nil {
		vm.free()
		return nil, err
	}
	fr := &distFrames{pool: h.pool, bytes: physBytes, building: true, home: spec.Home(), self: d.net.Self(), pages: uint64(spec.Pages)}
	vm.frames = fr
	vm.rt, err = dvm.New(dvm.Config{
		Spec: spec, Self: d.net.Self(), Perm: vm.perm, Frames: fr,
		CopyFrames: distCopyBudget(spec, d.net.Self(), inUse, total),
		HomeRoom:   distHomeRoom(spec, d.net.Self(), inUse, total),
		Transport:  d.net, DeviceNode: 0, Poll: d.net.Poll,
		OnArrive: vm.arrive, OnDevice: vm.device, OnDeviceRead: vm.deviceRead, OnInterrupt: vm.kickVCPU,
		DevicesUnlocked: spec.Payload == payloadLinux,
		Hold:            holdWindow(spec),
		Trace:           d.trace,
		Cores:           h.NumCores(),
	})
	fr.endRun()
	if err != nil {
		vm.free()
		return nil, err
	}
	if vm.perm.err != nil {
		vm.closeRuntime()
		vm.free()
		return nil, vm.perm.err
	}
	if spec.Payload == payloadLinux {
		if err := vm.createLinux(linux); err != nil {
			vm.closeRuntime()
			vm.free()
			return nil, err
		}
	}
	vm.built = time.Since(vm.created)
	fr.building = false // before the share runs: faults never yield
	go vm.rt.Run()
	go vm.watch()
	if spec.Balance != dvm.BalanceNone {
		go vm.balance()
	}
	if vm.ld != nil {
		go vm.ld.forward(&vm.linux.stop)
		go vm.ld.tick(&vm.linux.stop)
	}
	return vm, nil
}

// holdWindow bounds how long a page stays on a node that has just gained
// it (dvm.Config.Hold, three remote faults' time): for an operating
// system, whose CPUs write shared pages inside short critical sections,
// at most 5 ms (in Bochs a remote fault takes about 4 ms; on a real
// network tens of microseconds); the test guests run without (their
// figures are the protocol's own).
func holdWindow(spec dvm.Spec) time.Duration {
	if spec.Payload == payloadLinux {
		return 5 * time.Millisecond
	}
	return 0
}

// createLinux builds this node's share of an operating-system guest: on
// node 0, from cfg, with the devices and the guest loaded; elsewhere
// without either.
func (vm *distVM) createLinux(cfg *LinuxConfig) error {
	self := vm.rt.Self()
	ld := &linuxDist{share: vm, rt: vm.rt, tab: vm.tab, devices: self == 0, outSig: make(chan struct{}, 1)}
	for v := 0; v < vm.spec.VCPUs; v++ {
		ld.here[v].Store(vm.spec.Place.Node(migrate.VCPUID(v), vm.spec.Nodes) == self)
	}
	lc := LinuxConfig{Name: "linux", VCPUs: vm.spec.VCPUs, Memory: uint64(vm.spec.Pages) * memory.PageSize, Dilation: int(vm.spec.Dilation)}
	if vm.spec.Arg&linuxArgMultiboot != 0 {
		lc.Name, lc.XAPIC = "multiboot", true
	}
	if cfg != nil {
		lc = *cfg
	} else if self == 0 {
		return errors.New("node 0 of a Linux VM needs the guest's configuration")
	}
	vm.ld = ld
	l, err := vm.d.h.newLinux(lc, ld)
	if err != nil {
		return err
	}
	vm.linux = l
	if self == 0 {
		h := vm.d.h
		h.mu.Lock()
		h.vms = append(h.vms, l)
		h.mu.Unlock()
	}
	return nil
}

func (vm *distVM) free() {
	if vm.tab != nil {
		vm.tab.Destroy()
		vm.tab = nil
	}
	for _, f := range vm.owned {
		vm.d.h.pool.FreeFrame(f)
	}
	vm.owned = nil
	if vm.svmMaps != 0 {
		vm.d.h.pool.FreeRun(vm.svmMaps)
		vm.svmMaps = 0
	}
}

// end stops this node's share: vCPUs leave, the runtime closes, frames
// go back.
// closeRuntime closes the share's runtime, whose engine gives back every
// frame: the runs home pages took whole go back as runs.
func (vm *distVM) closeRuntime() {
	vm.frames.closing.Store(true)
	vm.rt.Close()
}

func (vm *distVM) end(why string) {
	if vm.stop.Swap(true) {
		return
	}
	vm.outcome.CompareAndSwap(nil, &why)
	if vm.linux != nil {
		vm.linux.end(why)
	}
	vm.closeRuntime() // wakes vCPUs waiting for pages
	vm.wg.Wait()
	if vm.linux != nil {
		vm.linux.wg.Wait()
		vm.linux.free()
	}
	vm.free()
}

// watchInterval is how often a VM's share looks for lost nodes: small
// beside lossSilence.
const watchInterval = 50 * time.Millisecond

// lossSilence is how long a node of a VM may stay silent before the
// others stop the VM without waiting for the cluster to remove it (which
// a cluster of two cannot): three failure timeouts. One was too few: a
// Bochs node booting Linux on its only core went 522 ms unheard while
// alive, and the other stopped the VM (TestBochsClusterLinux).
const lossSilence = 3 * membership.DefaultFailureTimeout

// watch stops this node's share once another of the VM's nodes is lost,
// until the share ends.
//
// A VM with time dilation (dvm start dilate=N, for emulators whose
// network and timing are slow) waits N times lossSilence: in Bochs a
// node booting Linux on its only core went more than 1.5 s unheard while
// alive (TestBochsClusterLinux).
func (vm *distVM) watch() {
	silence := lossSilence * time.Duration(max(1, int(vm.spec.Dilation)))
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for range t.C {
		if vm.stop.Load() {
			return
		}
		for n := range vm.spec.Nodes {
			if why, lost := vm.d.net.Lost(memory.NodeID(n), silence); lost {
				vm.lose(memory.NodeID(n), why)
				return
			}
		}
	}
}

// balance moves this node's vCPUs for load as the VM's balancer
// (Spec.Balance) decides, until the share ends, asking it at the
// runtime's cadence (dvm.Runtime.BalanceEvery: the balancer counts in
// remote faults' time, on the host's clock, whatever the guest's
// dilation). A vCPU that waits for its startup IPI is not the
// balancer's to move, nor one already asked to move (looks come every
// few milliseconds, a move at the vCPU's next exit).
func (vm *distVM) balance() {
	t := time.NewTimer(vm.rt.BalanceEvery())
	defer t.Stop()
	movable := func(v migrate.VCPUID) bool {
		if vm.linux != nil {
			return vm.linux.vcpus[v].state.Load() != int32(VCPUWaitSIPI) && vm.linux.vcpus[v].moveTo.Load() == 0
		}
		return vm.vstate[v].Load() != int32(VCPUWaitSIPI) && vm.moveTo[v].Load() == 0
	}
	for range t.C {
		if vm.stop.Load() {
			return
		}
		if v, to, ok := vm.rt.Rebalance(movable); ok {
			if err := vm.requestMove(int(v), int(to)); err != nil {
				fmt.Fprintf(vm.d.notices, "dvm %d: balance: %v\n", vm.spec.ID, err)
			}
		}
		t.Reset(vm.rt.BalanceEvery())
	}
}

// lose stops this node's share because node n is gone: every waiter
// wakes with the loss, the VM's other nodes are told to stop too (they
// say "stopped: node N lost (reported by node M)"), one notice names the
// node and what went with it, `dvm stat` shows it as the outcome, and
// the share's frames go back so that a new VM can start at once.
func (vm *distVM) lose(n memory.NodeID, why string) {
	e := vm.d.plane.NodeLost(vm, n, why)
	if e == nil {
		return
	}
	s := e.Describe(vm.d.net.ClusterID)
	fmt.Fprintf(vm.d.notices, "dvm %d: %s\n", vm.spec.ID, s)
	vm.end(s)
}

// startLocal starts the vCPUs placed on this node.
func (vm *distVM) startLocal() {
	if vm.linux != nil {
		for v := 0; v < vm.spec.VCPUs; v++ {
			if vm.ld.here[v].Load() {
				vm.linux.startVCPU(v)
			}
		}
		return
	}
	// Application processors wait for a startup IPI from the guest, as
	// on a real machine; only the BSP starts.
	if vm.rt.Hosts(0) {
		vm.launch(0, nil, -1)
	}
}

// startupLocked releases vCPU v, hosted here and waiting for a startup
// IPI, at vector; a SIPI to a started vCPU is ignored, as by the
// processor. h holds the runtime's lock.
func (vm *distVM) startupLocked(h *dvm.Handle, v int, vector uint8) {
	if v >= vm.spec.VCPUs || !h.Hosts(migrate.VCPUID(v)) {
		fmt.Fprintf(vm.d.notices, "dvm %d: startup IPI for vCPU %d, which is not on node %d\n", vm.spec.ID, v, vm.rt.Self())
		return
	}
	if vm.linux != nil {
		vcpuEvents{vm.linux.vcpus[v]}.Startup(vector)
		return
	}
	if !vm.vstate[v].CompareAndSwap(int32(VCPUWaitSIPI), int32(VCPURunning)) {
		return
	}
	vm.launch(v, nil, int(vector))
}

// arrive is the runtime's OnArrive: a vCPU migrated here.
func (vm *distVM) arrive(v migrate.VCPUID, st *vcpu.State) {
	if vm.linux != nil {
		if err := vm.linux.arrive(int(v), st); err != nil {
			vm.linux.end(fmt.Sprintf("vCPU %d arrived on node %d: %v", v, vm.rt.Self(), err))
		}
		return
	}
	cp := new(vcpu.State)
	*cp = *st
	vm.launch(int(v), cp, -1)
}

// deviceRead is the runtime's OnDeviceRead: the debug device on node 0,
// its ID port and its MMIO page (ID and scratch registers); the rest
// reads as all ones. It runs with the runtime's lock held; for a Linux
// guest it is the guest's devices, served without the lock
// (dvm.Config.DevicesUnlocked).
func (vm *distVM) deviceRead(d dvm.DeviceRead) uint64 {
	if vm.linux != nil {
		return vm.linux.forwardedRead(d)
	}
	switch {
	case !d.MMIO && d.Addr == testguest.DeviceIDPort && d.Size == 4:
		return testguest.DeviceID
	case d.MMIO && d.Addr == testguest.MMIOBase+testguest.MMIOID && d.Size == 4:
		return testguest.DeviceID
	case d.MMIO && d.Addr == testguest.MMIOBase+testguest.MMIOScratch && d.Size == 4:
		return uint64(vm.scratch)
	}
	return ^uint64(0)
}

// device is the runtime's OnDevice: the debug device lives on node 0. It
// runs with the runtime's lock held; for a Linux guest it is the guest's
// devices, served without the lock.
func (vm *distVM) device(h *dvm.Handle, d dvm.DeviceWrite) {
	if vm.linux != nil {
		vm.linux.forwardedWrite(d)
		return
	}
	if d.MMIO {
		switch {
		case d.Addr == testguest.MMIOBase+testguest.MMIOScratch && d.Size == 4:
			vm.scratch = uint32(d.Value)
		case d.Addr == testguest.MMIOBase+testguest.MMIODoorbell && d.Size == 4:
			// The doorbell: an interrupt for the vCPU whose APIC id was
			// written, wherever it runs.
			if d.Value >= uint64(vm.spec.VCPUs) {
				return
			}
			vm.deviceIRQs.Add(1)
			if err := vm.raise(h, migrate.VCPUID(d.Value), testguest.PingVectorDevice); err != nil {
				fmt.Fprintf(vm.d.notices, "dvm %d: device interrupt for vCPU %d: %v\n", vm.spec.ID, d.Value, err)
			}
		}
		return
	}
	if d.Addr < testguest.DebugPort || d.Addr >= testguest.DebugPort+4 {
		return
	}
	vm.port.Out(uint16(d.Addr), d.Size, uint32(d.Value))
	if vm.port.report.Done && vm.outcome.Load() == nil {
		rep := &vm.port.report
		check := rep.CheckCounter
		if testguest.Variant(vm.spec.Payload) == testguest.VariantPingPong {
			check = rep.CheckPingPong
		}
		err := check()
		verdict, arg := "ok", uint32(0)
		if err != nil {
			verdict, arg = err.Error(), 1
		}
		s := fmt.Sprintf("finished: counter %d (%d vCPUs x %d iterations), %d TSC ticks on vCPU 0, %v; guest report: %s",
			rep.Counter, rep.CounterVCPUs, rep.CounterIters, rep.CounterTSC, time.Since(vm.created).Round(time.Millisecond), verdict)
		vm.outcome.Store(&s)
		fmt.Fprintf(vm.d.notices, "dvm %d: %s\n", vm.spec.ID, s)
		go vm.broadcast(dvm.Control{Op: dvm.OpDone, Arg: arg})
	}
}

// requestMove asks vCPU v to move to node at its next exit; if v runs
// elsewhere, the request goes to its node.
func (vm *distVM) requestMove(v, node int) error {
	if v >= vm.spec.VCPUs || node >= vm.spec.Nodes {
		return fmt.Errorf("dvm %d: no vCPU %d or node %d (VM of %d vCPUs on %d nodes)", vm.spec.ID, v, node, vm.spec.VCPUs, vm.spec.Nodes)
	}
	where := vm.rt.Location(migrate.VCPUID(v))
	waiting := vm.vstate[v].Load() == int32(VCPUWaitSIPI)
	if vm.linux != nil {
		waiting = vm.linux.vcpus[v].state.Load() == int32(VCPUWaitSIPI)
	}
	if where == vm.rt.Self() && waiting {
		return fmt.Errorf("dvm %d: vCPU %d waits for its startup IPI: it moves once started", vm.spec.ID, v)
	}
	if int(where) == node {
		return fmt.Errorf("dvm %d: vCPU %d already runs on node %d", vm.spec.ID, v, node)
	}
	if where != vm.rt.Self() {
		return vm.d.plane.SendTo(vm, where, dvm.Control{Op: dvm.OpMigrate, VCPU: migrate.VCPUID(v), Node: memory.NodeID(node)})
	}
	if vm.linux != nil {
		vm.linux.vcpus[v].moveTo.Store(int32(node) + 1)
		vm.kickVCPU(migrate.VCPUID(v)) // a halted vCPU leaves too
		return nil
	}
	vm.moveTo[v].Store(int32(node) + 1)
	return nil
}

// launch runs vCPU v on this node: from the payload's initial state, from
// the real-mode state of a startup IPI with vector startup (>= 0), or
// from st when it arrived by migration.
func (vm *distVM) launch(v int, st *vcpu.State, startup int) {
	vm.wg.Add(1)
	vm.vstate[v].Store(int32(VCPURunning))
	go func() {
		defer vm.wg.Done()
		if err := vm.run(v, st, startup); err != nil {
			s := fmt.Sprintf("vCPU %d stopped on node %d: %v", v, vm.rt.Self(), err)
			if vm.outcome.CompareAndSwap(nil, &s) {
				fmt.Fprintf(vm.d.notices, "dvm %d: %s\n", vm.spec.ID, s)
			}
			vm.vstate[v].Store(int32(VCPUStopped))
		}
	}()
}

// distPort is the debug device seen by a vCPU: writes are held until the
// vCPU has left its core, then forwarded to the device node; a read
// returns 0 at once and is then done on the device node, its value
// patched into the guest's RAX before the vCPU runs again.
type distPort struct {
	pending bool
	w       dvm.DeviceWrite
	read    bool
	r       dvm.DeviceRead
}

func (p *distPort) In(port uint16, size uint8) uint32 {
	p.read, p.r = true, dvm.DeviceRead{Addr: uint64(port), Size: size}
	return 0
}

func (p *distPort) Out(port uint16, size uint8, v uint32) {
	p.pending, p.w = true, dvm.DeviceWrite{Addr: uint64(port), Size: size, Value: uint64(v)}
}

// mmioAccess emulates the access of dev's vCPU to the debug device's MMIO page at
// gpa wherever the device lives: the instruction is fetched through the
// coherence protocol and the guest's page tables, decoded, and its read
// or write forwarded to the device node. It runs with the VMCS loaded
// and the runtime's lock held, and returns with the VMCS loaded again,
// RIP past the instruction.
func (vm *distVM) mmioAccess(dev *distMMIO, c guestCPU, gpa uint64) error {
	rip, cr3, rsp := c.RIP(), c.CR3(), c.RSP()
	c.Put()
	var buf [maxInstruction]byte
	code, err := mmio.Fetch(distMemory{dev.h}, cr3, rip, &buf)
	if err != nil {
		return fmt.Errorf("device access at %#x: %w", gpa, err)
	}
	dev.err = nil
	n, err := mmio.Emulate(code, dev, gpa-testguest.MMIOBase, c.Regs(), &rsp)
	if err == nil {
		err = dev.err
	}
	if err != nil {
		return fmt.Errorf("device access at %#x (RIP %#x): %w", gpa, rip, err)
	}
	if err := c.Load(); err != nil {
		return err
	}
	c.SetRSP(rsp)
	c.Advance(uint32(n))
	return nil
}

// distMemory is guest memory through the coherence protocol, for a
// caller whose handle holds the runtime's lock and is not pinned.
type distMemory struct{ h *dvm.Handle }

func (m distMemory) ReadAt(p []byte, gpa uint64) error { return m.h.Read(gpa, p) }
func (m distMemory) WriteAt(p []byte, gpa uint64) error {
	return errors.New("dvm: writes through distMemory are not needed")
}

// distMMIO is a device window seen from a vCPU: every access goes to
// the device node (or is served here, if this is it).
type distMMIO struct {
	h     *dvm.Handle // the vCPU's, holding the lock
	base  uint64
	err   error
	wrote bool // a write was forwarded
}

func (d *distMMIO) ReadMMIO(off uint64, size int) uint64 {
	val, err := d.h.ReadDevice(true, d.base+off, uint8(size))
	if err != nil && d.err == nil {
		d.err = err
	}
	return val
}

func (d *distMMIO) WriteMMIO(off uint64, size int, value uint64) {
	d.wrote = true
	err := d.h.Forward(dvm.DeviceWrite{VCPU: d.h.VCPU(), MMIO: true, Addr: d.base + off, Size: uint8(size), Value: value})
	if err != nil && d.err == nil {
		d.err = err
	}
}

// raise makes vector pending on vCPU v wherever it runs, and wakes it if
// it is halted here. h holds the runtime's lock; the caller is not
// pinned.
func (vm *distVM) raise(h *dvm.Handle, v migrate.VCPUID, vector uint8) error {
	if err := h.Interrupt(v, vector); err != nil {
		return err
	}
	vm.kickVCPU(v)
	return nil
}

// kickVCPU wakes vCPU v if it waits halted on this node (the runtime's
// OnInterrupt). It never blocks.
func (vm *distVM) kickVCPU(v migrate.VCPUID) {
	if vm.linux != nil {
		if int(v) < len(vm.linux.vcpus) {
			vcpuEvents{vm.linux.vcpus[v]}.Kick()
		}
		return
	}
	if int(v) < len(vm.kick) {
		select {
		case vm.kick[v] <- struct{}{}:
		default:
		}
	}
}

// checkDistPayload refuses a VM whose guest this node cannot run: the
// spec may come from a peer.
func checkDistPayload(spec dvm.Spec) error {
	if spec.Payload == payloadLinux {
		return nil
	}
	switch testguest.Variant(spec.Payload) {
	case testguest.VariantCounter:
		return nil
	case testguest.VariantPingPong:
		if spec.VCPUs != 2 {
			return fmt.Errorf("dvm %d: the pingpong guest needs 2 vCPUs, not %d", spec.ID, spec.VCPUs)
		}
		return nil
	}
	return fmt.Errorf("dvm %d: unknown guest %d", spec.ID, spec.Payload)
}

// sendIPI delivers vCPU dest (an APIC id: the vCPU number) an interrupt
// of vector, or with startup a startup IPI, wherever it runs. The caller
// holds rt's lock in h and is not pinned.
func (vm *distVM) sendIPI(h *dvm.Handle, dest uint32, vector uint8, startup bool) error {
	if dest >= uint32(vm.spec.VCPUs) {
		vm.ipisIgnored.Add(1)
		return nil
	}
	if !startup {
		vm.ipis.Add(1)
		return vm.raise(h, migrate.VCPUID(dest), vector)
	}
	return vm.sendStartup(h, int(dest), vector)
}

// sendStartup delivers vCPU dest a startup IPI of vector wherever it is.
// The caller holds rt's lock and is not pinned.
func (vm *distVM) sendStartup(h *dvm.Handle, dest int, vector uint8) error {
	vm.startups.Add(1)
	where := h.Location(migrate.VCPUID(dest))
	if where == vm.rt.Self() {
		vm.startupLocked(h, dest, vector)
		return nil
	}
	// The startup IPI goes by the control plane: the walk windows'
	// changes must be out first, as before any message.
	if err := h.EndWindows(); err != nil {
		return err
	}
	return vm.d.plane.SendTo(vm, where, dvm.Control{Op: dvm.OpStartup, VCPU: migrate.VCPUID(dest), Arg: uint32(vector)})
}

// run runs test-guest vCPU v on this node in the run loop: from the
// payload's initial state, from the real-mode state of a startup IPI with
// vector startup (>= 0), or from arrived when it came by migration. It
// holds the runtime's lock while the vCPU is in guest mode and lets go of
// it, after leaving the core, whenever it may block.
func (vm *distVM) run(v int, arrived *vcpu.State, startup int) error {
	h := vm.d.h
	frame, err := h.zeroFrame() // the VMCS or VMCB
	if err != nil {
		return err
	}
	defer h.pool.FreeFrame(frame)
	t := &distVCPU{vm: vm, v: v}
	// The guest's x87/SSE state is switched at every entry and exit, and
	// travels with the vCPU.
	regs := vmx.GuestRegs{FPU: vmx.NewFXArea(), HostFPU: vmx.NewFXArea()}
	res := &Result{Variant: testguest.VariantCounter}
	if h.svmCaps != nil {
		t.cpu, err = vm.newSVMVCPU(v, frame, regs, arrived, startup, res)
	} else {
		t.cpu, err = vm.newVMXVCPU(v, frame, regs, arrived, startup, res)
	}
	if err != nil {
		return err
	}
	bus := exits.NewIOBus()
	if err := bus.Register(testguest.DebugPort, testguest.DeviceIDPort+4-testguest.DebugPort, "debug device", &t.port); err != nil {
		return err
	}
	t.h = vm.rt.Handle(migrate.VCPUID(v))
	t.mmio = distMMIO{h: t.h, base: testguest.MMIOBase}
	msrs := exits.NewMSRTable()
	if err := msrs.Register(testguest.MSRx2APICICR, testguest.MSRx2APICICR, "x2APIC ICR", &t.icr); err != nil {
		return err
	}
	if c, ok := t.cpu.(*svmCPU); ok {
		if err := msrs.Register(svm.MSREFER, svm.MSREFER, "EFER", eferMSR{c.vmcb}); err != nil {
			return err
		}
	}
	t.disp = exits.Dispatcher{CPUID: h.cpuid, IO: bus, MSR: msrs, APICID: uint32(v)}
	t.wake = time.NewTimer(time.Hour)
	defer t.wake.Stop()
	loop := runloop.Loop{CPU: t.cpu, Guest: t, Exits: &t.disp, Slice: h.plat.TSCHz / 1000}

	t.h.Lock()
	err = loop.Run()
	vm.gone.Add(&t.disp.Stats)
	vm.exits[v] = exits.ExitStats{}
	t.h.Unlock()
	return err
}

// newVMXVCPU makes test-guest vCPU v a VMCS in frame: from the payload's
// initial state, the real-mode state of a startup IPI with vector startup
// (>= 0), or arrived.
func (vm *distVM) newVMXVCPU(v int, vmcs uint64, regs vmx.GuestRegs, arrived *vcpu.State, startup int, res *Result) (*vmxCPU, error) {
	h := vm.d.h
	*(*uint32)(unsafe.Pointer(&physBytes(vmcs, 4)[0])) = h.caps.Basic.Revision
	vpid := uint16(0)
	if vm.ctl.Proc2&vmx.Proc2EnableVPID != 0 {
		vpid = uint16(16 + v)
	}
	g, err := testguest.InitialState(h.caps, vm.ctl, vm.tab.EPTP(), vpid)
	if startup >= 0 {
		g, err = StartupState(h.caps, vm.ctl, vm.tab.EPTP(), vpid, uint8(startup))
		if err == nil {
			if bad := h.caps.CheckGuestState(&g, uint8(h.eptc.MaxPhysAddr)); len(bad) > 0 {
				err = fmt.Errorf("startup state would fail VM entry: %v", bad[0])
			}
		}
	}
	if err != nil {
		return nil, err
	}
	c := &vmxCPU{h: h, apicID: uint32(v), bsp: v == 0, regs: regs}
	if arrived != nil {
		LoadVCPU(h.caps, arrived, &g, &c.regs)
	}
	c.reset(loadedVMCS{h: h, vmcs: vmcs, eptp: vm.tab.EPTP(), vpid: vpid, exit: vm.ctl.Exit,
		setup: append(g.Fields(), vm.setup...), res: res}, vm.ctl)
	return c, nil
}

// newSVMVCPU makes test-guest vCPU v a VMCB in frame, started as
// newVMXVCPU says.
func (vm *distVM) newSVMVCPU(v int, vmcb uint64, regs vmx.GuestRegs, arrived *vcpu.State, startup int, res *Result) (*svmCPU, error) {
	h := vm.d.h
	c := newSVMCPU(h, vmcb, res)
	c.regs, c.apicID, c.bsp = regs, uint32(v), v == 0
	svmGuestVMCB(c.vmcb, vm.svmMaps, h.asid(v), vm.tab.EPTP())
	switch {
	case arrived != nil:
		c.loadState(arrived)
	case startup >= 0:
		// Real mode at vector's page, as for a Linux AP (startupVCPU).
		var st vcpu.State
		startupVCPU(uint8(startup), uint32(v), &st)
		c.loadState(&st)
	default:
		realModeVMCB(c.vmcb, testguest.LoadAddress, testguest.StackTop)
	}
	return c, nil
}

// distVCPU is what a test-guest vCPU of a distributed VM does
// differently in the run loop (runloop.Guest): its debug device and
// memory are wherever the VM keeps them, its interrupts come through the
// runtime, and the runtime's lock is held while it is in guest mode.
type distVCPU struct {
	vm   *distVM
	v    int
	h    *dvm.Handle // on the runtime, held while in guest mode
	cpu  guestCPU
	disp exits.Dispatcher
	port distPort
	icr  distICR
	mmio distMMIO
	wake *time.Timer
}

var _ runloop.Guest = (*distVCPU)(nil)

func (t *distVCPU) id() migrate.VCPUID { return migrate.VCPUID(t.v) }

// Service serves the VM's messages and forwards the device accesses
// and IPIs the latest exit recorded.
func (t *distVCPU) Service(c runloop.CPU) (runloop.Step, error) {
	vm := t.vm
	if vm.stop.Load() {
		return runloop.Stop, nil
	}
	if err := t.serve(c); err != nil {
		return runloop.Stop, err
	}
	if err := vm.perm.err; err != nil {
		return runloop.Stop, err
	}
	return runloop.Continue, t.forward(c)
}

// serve serves the messages waiting, off the core (serving sends), and
// returns the error that stopped the VM on this node.
func (t *distVCPU) serve(c runloop.CPU) error {
	if !t.vm.rt.Pending() {
		return t.h.Err()
	}
	c.Put()
	return t.h.Serve()
}

// forward sends what the latest exit's handlers recorded: a debug-port
// write or read, an IPI.
func (t *distVCPU) forward(c runloop.CPU) error {
	p := &t.port
	if p.pending {
		p.pending = false
		c.Put()
		if err := t.h.Forward(p.w); err != nil {
			return err
		}
	}
	if p.read {
		p.read = false
		c.Put()
		val, err := t.h.ReadDevice(false, p.r.Addr, p.r.Size)
		if err != nil {
			return err
		}
		setIn(&t.cpu.Regs().RAX, p.r.Size, uint32(val))
	}
	if t.icr.pending {
		t.icr.pending = false
		c.Put()
		return t.vm.sendIPI(t.h, t.icr.dest, t.icr.vector, t.icr.startup)
	}
	return nil
}

func (t *distVCPU) Move() (int, bool) {
	dst := t.vm.moveTo[t.v].Load()
	return int(dst) - 1, dst != 0
}

// Depart sends the vCPU's state to node dst.
func (t *distVCPU) Depart(dst int, st *vcpu.State) (bool, error) {
	t.vm.moveTo[t.v].Store(0)
	if err := t.h.Depart(memory.NodeID(dst), st); err != nil {
		return false, err
	}
	t.vm.vstate[t.v].Store(int32(VCPUMigrated))
	return true, nil
}

// Exited tells the runtime that the vCPU ran (its walk windows may have
// changed), and publishes the changed ones, waiting for their upgrades,
// before a device store is emulated.
func (t *distVCPU) Exited(c runloop.CPU, e *exits.Exit, a *exits.Action) error {
	t.h.Ran()
	if !deviceStore(e, a) || !t.h.WindowsActive() {
		return nil
	}
	c.Put()
	return t.h.EndWindows()
}

func (t *distVCPU) InterruptPending() bool       { return t.h.InterruptPending() }
func (t *distVCPU) TakeInterrupt() (uint8, bool) { return t.h.TakeInterrupt() }
func (t *distVCPU) TSCOffset() uint64            { return 0 }

func (t *distVCPU) Resumed(runloop.CPU, bool) (runloop.Step, error) { return runloop.Continue, nil }

// Fault emulates an access to the debug device's MMIO page wherever the
// device is, or fetches the page (or moves the vCPU where it is, by the
// VM's policy).
func (t *distVCPU) Fault(c runloop.CPU, e *exits.Exit, mayMove bool) (runloop.Step, error) {
	vm, gpa := t.vm, e.GuestPhysical
	if gpa >= testguest.MMIOBase && gpa < testguest.MMIOBase+memory.PageSize {
		if mayMove {
			if dst, ok := t.h.DeviceMove(); ok {
				// The access runs on the device node.
				vm.moveTo[t.v].Store(int32(dst) + 1)
				return runloop.Continue, nil
			}
		}
		return runloop.Continue, vm.mmioAccess(&t.mmio, t.cpu, gpa)
	}
	if _, ram := vm.spec.Split().Index(gpa); !ram {
		return runloop.Stop, fmt.Errorf("guest accessed %#x, outside its memory (EPT violation)", gpa)
	}
	write := e.Qualification&2 != 0
	vm.countWalk(e.Qualification)
	if write && vm.spec.WalkWindows && inWalk(e.Qualification) {
		c.Put()
		return runloop.Continue, t.h.WalkFault(gpa)
	}
	if mayMove {
		if dst, ok := t.h.Place(gpa, write); ok {
			// The access runs where the page is.
			vm.moveTo[t.v].Store(int32(dst) + 1)
			return runloop.Continue, nil
		}
	}
	c.Put()
	return runloop.Continue, t.h.Fault(gpa, write)
}

// Halt waits, off the core and without the lock, until an interrupt is
// pending (with interrupts enabled; otherwise for ever), the vCPU is to
// move, or the VM stops.
func (t *distVCPU) Halt(c runloop.CPU, interruptible bool) (runloop.Step, error) {
	vm := t.vm
	vm.vstate[t.v].Store(int32(VCPUHalted))
	defer vm.vstate[t.v].Store(int32(VCPURunning))
	for {
		if _, move := t.Move(); move || vm.stop.Load() {
			return runloop.Continue, nil
		}
		if err := t.serve(c); err != nil {
			return runloop.Stop, err
		}
		if interruptible && t.h.InterruptPending() {
			return runloop.Continue, nil
		}
		vm.exits[t.v] = t.disp.Stats
		c.Put()
		t.h.Unlock()
		// the timer bounds the wait for a move or the end of the VM
		t.wake.Reset(2 * time.Millisecond)
		select {
		case <-vm.kick[t.v]:
		case <-t.wake.C:
		}
		t.h.Lock()
	}
}

func (t *distVCPU) Other(runloop.CPU, *exits.Exit, *exits.Action) (runloop.Step, error) {
	return runloop.Stop, runloop.ErrUnhandled
}

// Yield publishes the exit counts and lets go of the lock for a moment.
func (t *distVCPU) Yield() {
	t.vm.exits[t.v] = t.disp.Stats
	t.h.Unlock()
	runtime.Gosched()
	t.h.Lock()
}

// countWalk counts a fault of exit qualification q if it hit one of the
// guest's page tables during a walk.
func (vm *distVM) countWalk(q uint64) {
	if inWalk(q) {
		vm.walkFaults.Add(1)
		if q&2 != 0 {
			vm.walkWrites.Add(1)
		}
	}
}

// Status reports this node's view of the VM.
func (d *Dist) Status() (DistStatus, error) {
	vm := d.current()
	if vm == nil {
		return DistStatus{}, errors.New("no distributed VM on this node")
	}
	st := DistStatus{Spec: vm.spec, Self: int(d.net.ClusterID(vm.rt.Self())), Index: int(vm.rt.Self()), Elapsed: time.Since(vm.created), Stats: vm.rt.Stats(),
		IPIs: vm.ipis.Load(), Startups: vm.startups.Load(), IPIsIgnored: vm.ipisIgnored.Load(), DeviceIRQs: vm.deviceIRQs.Load(),
		WalkFaults: vm.walkFaults.Load(), WalkWrites: vm.walkWrites.Load(), SliceWatch: d.h.SliceWatch(),
		Built: vm.built, TableFrames: int(vm.perm.tables.Load()), MaxTableFrames: int(eptFrames(vm.spec.Split())),
		LargePages: vm.perm.largePages()}
	var cells [distMapCells]memory.State
	per, n := vm.rt.PageMap(cells[:])
	st.PageMap, st.PagesPerCell = cells[:n], per
	var hot [8]dvm.HotPage
	st.HotPages = hot[:vm.rt.HotPages(hot[:])]
	h := vm.rt.Handle(dvm.NoVCPU)
	h.Lock()
	st.Exits = vm.gone
	for v := range vm.exits {
		st.Exits.Add(&vm.exits[v])
	}
	h.Unlock()
	if o := vm.outcome.Load(); o != nil {
		st.Outcome = *o
	}
	if err := vm.rt.Err(); err != nil && st.Outcome == "" {
		st.Outcome = "stopped on this node: " + err.Error()
	}
	if vm.linux != nil {
		info := vm.linux.Info()
		st.Exits = info.Exits
		if info.Outcome != "running" && st.Outcome == "" {
			st.Outcome = info.Outcome
		}
		st.Guest = "linux"
		st.ClockCatchUps, st.ClockSkipped, st.ClockRefused = vm.ld.clock.ups.Load(), vm.ld.clock.skipped.Load(), vm.ld.clock.refused.Load()
		st.ClockUnsent = vm.ld.clockUnsent.Load()
	}
	for v := 0; v < vm.spec.VCPUs; v++ {
		where := vm.rt.Location(migrate.VCPUID(v))
		row := DistVCPU{ID: v, Node: int(d.net.ClusterID(where)), Here: where == vm.rt.Self(), State: "elsewhere"}
		if row.Here {
			row.State = VCPUState(vm.vstate[v].Load()).String()
			if l := vm.linux; l != nil {
				lv := l.vcpus[v]
				row.State = fmt.Sprintf("%v, %d exits, RIP %#x", VCPUState(lv.state.Load()), lv.loop.Count(), lv.loop.RIP())
			}
		}
		st.VCPUs = append(st.VCPUs, row)
	}
	return st, nil
}

// Peek reads a 32-bit word of guest memory through the coherence protocol.
func (d *Dist) Peek(gpa uint64) (uint32, error) {
	vm := d.current()
	if vm == nil {
		return 0, errors.New("no distributed VM on this node")
	}
	var b [4]byte
	if err := vm.rt.Read(gpa, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

// Migrate moves vCPU v to the cluster node with id node.
func (d *Dist) Migrate(v, node int) error {
	vm := d.current()
	if vm == nil {
		return errors.New("no distributed VM on this node")
	}
	i, ok := d.net.Index(uint32(node))
	if !ok {
		return fmt.Errorf("cluster node %d cannot take part in a distributed VM", node)
	}
	return vm.requestMove(v, int(i))
}

// Evacuate moves every vCPU off the cluster node with id node, then has
// that node write back and drop the page copies it does not home and hand
// the homes of its pages on to the other nodes (evacuateHere).
func (d *Dist) Evacuate(node int) (int, error) {
	vm := d.current()
	if vm == nil {
		return 0, errors.New("no distributed VM on this node")
	}
	idx, ok := d.net.Index(uint32(node))
	if !ok || int(idx) >= vm.spec.Nodes {
		return 0, fmt.Errorf("cluster node %d is not in this VM", node)
	}
	if vm.spec.Nodes < 2 {
		return 0, errors.New("a VM on one node has nowhere to go")
	}
	if idx == 0 && vm.spec.Payload == payloadLinux {
		return 0, fmt.Errorf("cluster node %d hosts the VM's devices: it cannot leave while the VM runs (devices do not move)", node)
	}
	target := evacuationTarget(idx)
	moved := 0
	for v := 0; v < vm.spec.VCPUs; v++ {
		if vm.rt.Location(migrate.VCPUID(v)) != idx {
			continue
		}
		if err := vm.requestMove(v, int(target)); err != nil {
			return moved, err
		}
		moved++
	}
	if idx == vm.rt.Self() {
		go vm.evacuateHere()
		return moved, nil
	}
	return moved, d.plane.SendTo(vm, idx, dvm.Control{Op: dvm.OpEvacuate})
}

// evacuationTarget is where an evacuated node's vCPUs go: node 0 of the
// VM, or node 1 when node 0 leaves.
func evacuationTarget(leaving memory.NodeID) memory.NodeID {
	if leaving == 0 {
		return 1
	}
	return 0
}

// homesWait bounds how long an evacuated node waits for its homes to be
// taken without one going.
const homesWait = 10 * time.Second

// evacuateHere waits for this node's vCPUs to leave, gives back the page
// copies it does not home and hands its homes on: it leaves
// (dvm.Runtime.Leave), and every other node takes those it knows this
// one homes (dvm.OpTakeHomes). Between them they know every one: the
// node that handed a home here knows it is here (homes that move on
// use), and every node knows the homes of the shares at the start.
func (vm *distVM) evacuateHere() {
	for deadline := time.Now().Add(10 * time.Second); vm.rt.HostedVCPUs() > 0; {
		if time.Now().After(deadline) {
			fmt.Fprintf(vm.d.notices, "dvm %d: evacuate: vCPUs still here after 10s\n", vm.spec.ID)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	vm.rt.Leave()
	n, err := vm.rt.EvictAll()
	if err != nil {
		fmt.Fprintf(vm.d.notices, "dvm %d: evacuate: %v\n", vm.spec.ID, err)
		return
	}
	homes := vm.rt.Stats().Homes
	if homes > 0 {
		if err := vm.broadcast(dvm.Control{Op: dvm.OpTakeHomes}); err != nil {
			fmt.Fprintf(vm.d.notices, "dvm %d: evacuate: asking the other nodes to take the homes: %v\n", vm.spec.ID, err)
			return
		}
	}
	left := vm.homesLeft(homes)
	fmt.Fprintf(vm.d.notices, "dvm %d: evacuated: no vCPU here, %d page copies given back, the homes of %d pages handed on, %d homed here\n",
		vm.spec.ID, n, homes-left, left)
}

// homesLeft waits until this node, which leaves, homes no page or none
// went for homesWait, and returns how many it homes.
func (vm *distVM) homesLeft(homes int) int {
	last := time.Now()
	for homes > 0 && time.Since(last) < homesWait {
		time.Sleep(20 * time.Millisecond)
		if h := vm.rt.Stats().Homes; h < homes {
			homes, last = h, time.Now()
		}
	}
	return homes
}

// Stop ends the VM on every node.
func (d *Dist) Stop() error {
	vm, _ := d.plane.Take().(*distVM)
	if vm == nil {
		return errors.New("no distributed VM on this node")
	}
	err := vm.broadcast(dvm.Control{Op: dvm.OpStop})
	vm.end("stopped")
	return err
}
