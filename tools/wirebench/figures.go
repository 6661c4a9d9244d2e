//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/big-iron/big-iron/machine/link/afpacket"
	"github.com/big-iron/big-iron/vmm/vcpu"
)

// counts are the operations each figure times; -short divides them.
type counts struct {
	warm, floor, echo, fault, migrate int
}

// countsFor returns the counts of a full or a -short run.
func countsFor(short bool) counts {
	if short {
		return counts{warm: 100, floor: 5000, echo: 5000, fault: 2000, migrate: 1000}
	}
	return counts{warm: 200, floor: 20000, echo: 20000, fault: 5000, migrate: 3000}
}

// floorSizes are the payload sizes of the floor's frames at mtu: 64 B,
// a 4 KiB page, 1500 B and 9000 B, those the MTU allows.
func floorSizes(mtu int) []int {
	var out []int
	for _, n := range []int{64, 1500, 4096, 9000} {
		if n <= mtu {
			out = append(out, n)
		}
	}
	return out
}

// shape is what an operation moves over the link: payload bytes out and
// back. Its floor is the AF_PACKET exchange of the same shape.
type shape struct{ out, back int }

// answerSize is the payload of a short answer's floor frame: an
// acknowledgement, a fault's request, an arrival's answer.
const answerSize = floorMin

// floorName names the floor of sh in the report: "floor" for an echo of
// one size (Size is that size), else floor-OUT-BACK (Size is the larger);
// the polled floor's names start "pollfloor".
func floorName(sh shape, polled bool) string {
	name := "floor"
	if polled {
		name = "pollfloor"
	}
	if sh.out == sh.back {
		return name
	}
	return fmt.Sprintf("%s-%d-%d", name, sh.out, sh.back)
}

// floors are the medians of a shape's floor and polled floor.
type floors struct{ plain, polled time.Duration }

// client is the measuring side: node 0 in namespace A.
type client struct {
	out    io.Writer
	mtu    int
	c      counts
	idle   time.Duration // -idle
	raw    *rawSocket
	plink  *afpacket.Link // the polled floor's
	s      *side
	floors map[shape]floors // those measured
}

// runClient measures every figure at the interface's MTU and writes one
// line per figure to out.
func runClient(out io.Writer, o options) error {
	raw, err := openRaw(ifA, time.Second)
	if err != nil {
		return err
	}
	defer raw.close()
	plink, err := afpacket.Open(ifA, etherPollFloor)
	if err != nil {
		return fmt.Errorf("polled floor: %w", err)
	}
	defer plink.Close()
	s, err := newSide(0, ifA, o.pol)
	if err != nil {
		return err
	}
	defer s.close()
	c := &client{out: out, mtu: s.st.l.MTU(), c: countsFor(o.short), idle: o.idle, raw: raw, plink: plink, s: s, floors: map[shape]floors{}}
	for _, fig := range []func() error{c.floor, c.echo, c.faults, c.migrate} {
		if err := fig(); err != nil {
			return err
		}
	}
	return nil
}

// series is a figure's series of n operations, prepared by prepare (if
// not nil) and counting both sides' allocations, as -idle asks.
func (c *client) series(n int, prepare, run func() error) series {
	return series{warm: c.c.warm, n: n, idle: c.idle, prepare: prepare, run: run, peerMallocs: c.s.servingMallocs}
}

// report writes the figure of smp, an operation of size bytes that moves
// what sh says, with its ratio to the floor of sh.
func (c *client) report(name string, size int, sh shape, smp sample) error {
	fl, err := c.floorOf(sh)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintln(c.out, smp.figure(name, c.mtu, size, fl.plain, fl.polled))
	return nil
}

// floor measures the AF_PACKET echo of one frame for every size the MTU
// allows.
func (c *client) floor() error {
	for _, size := range floorSizes(c.mtu) {
		if _, err := c.floorOf(shape{size, size}); err != nil {
			return err
		}
	}
	return nil
}

// floorOf returns the floors' medians for sh, measuring them (and
// reporting them, each with its ratio to the other) the first time.
func (c *client) floorOf(sh shape) (floors, error) {
	if fl, ok := c.floors[sh]; ok {
		return fl, nil
	}
	ma, mb := macs()
	e := newFloorExchange(c.raw, mb, ma, sh.out, sh.back, c.mtu)
	plain, err := measure(c.series(c.c.floor, nil, e.run))
	if err != nil {
		return floors{}, fmt.Errorf("floor %d B out, %d B back: %w", sh.out, sh.back, err)
	}
	pe := newPollExchange(c.plink, mb, ma, sh.out, sh.back, c.mtu)
	polled, err := measure(c.series(c.c.floor, nil, pe.run))
	if err != nil {
		return floors{}, fmt.Errorf("polled floor %d B out, %d B back: %w", sh.out, sh.back, err)
	}
	size := max(sh.out, sh.back)
	pf := plain.figure(floorName(sh, false), c.mtu, size, 0, 0)
	qf := polled.figure(floorName(sh, true), c.mtu, size, pf.Median, 0)
	pf.PollRatio = float64(pf.Median) / float64(qf.Median)
	fmt.Fprintln(c.out, pf)
	fmt.Fprintln(c.out, qf)
	c.floors[sh] = floors{pf.Median, qf.Median}
	return c.floors[sh], nil
}

// echo measures a message sent on the cluster transport and answered (the
// answer carries the acknowledgement): 64 B and a 4 KiB page.
func (c *client) echo() error {
	for _, size := range []int{64, 4096} {
		msg := make([]byte, size)
		run := func() error {
			if err := c.s.st.send(idB, chEcho, msg); err != nil {
				return err
			}
			return c.s.wait(c.s.echoed, "echo")
		}
		smp, err := measure(c.series(c.c.echo, nil, run))
		if err != nil {
			return fmt.Errorf("transport %d B: %w", size, err)
		}
		if err := c.report("transport", size, shape{size, answerSize}, smp); err != nil {
			return err
		}
	}
	return nil
}

// takeBack has the serving side write faultGPA, which takes the page
// from this node: the next access here faults remotely.
func (c *client) takeBack() error {
	if err := c.s.st.send(idB, chCtl, []byte{ctlWrite}); err != nil {
		return err
	}
	return c.s.wait(c.s.ctlDone, "control answer")
}

// faults measures a remote write fault and a remote read fault on
// faultGPA, homed on the serving side, after it took the page back.
func (c *client) faults() error {
	buf := make([]byte, 8)
	write := func() error { return c.s.rt.Write(faultGPA, buf) }
	read := func() error { return c.s.rt.Read(faultGPA, buf) }
	for _, f := range []struct {
		name string
		run  func() error
	}{{"write-fault", write}, {"read-fault", read}} {
		smp, err := measure(c.series(c.c.fault, c.takeBack, f.run))
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		// Against a request frame out and the page's frames back.
		if err := c.report(f.name, 4096, shape{answerSize, 4096}, smp); err != nil {
			return err
		}
	}
	return nil
}

// migrate measures vCPU 0 sent to the serving side and installed there,
// until its answer; the serving side sends the vCPU back when asked
// before the next one, untimed.
func (c *client) migrate() error {
	st := linuxVCPUState()
	away := false
	prepare := func() error {
		if !away {
			return nil
		}
		away = false
		if err := c.s.st.send(idB, chCtl, []byte{ctlBack}); err != nil {
			return err
		}
		return c.s.wait(c.s.arrived, "vCPU back")
	}
	run := func() error {
		h := c.s.rt.Handle(0)
		h.Lock()
		err := h.Depart(1, &st)
		h.Unlock()
		if err != nil {
			return err
		}
		away = true
		return c.s.wait(c.s.ctlDone, "arrival answer")
	}
	smp, err := measure(c.series(c.c.migrate, prepare, run))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return c.report("migrate", st.Size(), shape{st.Size(), answerSize}, smp)
}

// XSAVE area offsets (Intel SDM Vol. 1, 13.4 and 13.5, standard format)
// linuxVCPUState fills.
const (
	xsaveMXCSR    = 24
	xsaveXMM      = 160
	xsaveBV       = 512
	xsaveYMMHi128 = 576
	xsavePKRU     = 2688
)

// linuxVCPUState is the state the migration figure sends: the size of a
// running Linux vCPU's where the guest enables AVX and protection keys
// (XCR0 0x207, a 2,696-byte XSAVE area, as avxcheck reports in the
// end-to-end tests), its vector registers in use.
func linuxVCPUState() vcpu.State {
	var st vcpu.State
	st.Reset(0, true)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range st.GPR {
		st.GPR[i] = r.Uint64()
	}
	st.RIP = 0x100000
	st.XCR0 = vcpu.XCR0X87 | vcpu.XCR0SSE | vcpu.XCR0AVX | vcpu.XCR0PKRU
	st.XSAVELen = xsavePKRU + 8
	x := st.XSAVE[:st.XSAVELen]
	binary.LittleEndian.PutUint16(x, 0x037f) // FCW after FNINIT
	binary.LittleEndian.PutUint32(x[xsaveMXCSR:], 0x1f80)
	for i := xsaveXMM; i < xsaveXMM+16*16; i += 8 {
		binary.LittleEndian.PutUint64(x[i:], r.Uint64())
	}
	for i := xsaveYMMHi128; i < xsaveYMMHi128+16*16; i += 8 {
		binary.LittleEndian.PutUint64(x[i:], r.Uint64())
	}
	binary.LittleEndian.PutUint64(x[xsaveBV:], st.XCR0)
	binary.LittleEndian.PutUint32(x[xsavePKRU:], 0x55555554) // Linux's default PKRU
	return st
}
