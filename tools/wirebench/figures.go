//go:build linux

package main

import (
	"fmt"
	"io"
	"slices"
	"time"

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

// floorFor returns the floor's median to compare an operation of size
// bytes with: that of the smallest frame at least as large, or of the
// largest frame if none is (a message the link must fragment).
func floorFor(floors map[int]time.Duration, size int) time.Duration {
	sizes := make([]int, 0, len(floors))
	for n := range floors {
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	if len(sizes) == 0 {
		return 0
	}
	for _, n := range sizes {
		if n >= size {
			return floors[n]
		}
	}
	return floors[sizes[len(sizes)-1]]
}

// client is the measuring side: node 0 in namespace A.
type client struct {
	out    io.Writer
	mtu    int
	c      counts
	idle   time.Duration // -idle
	raw    *rawSocket
	s      *side
	floors map[int]time.Duration
}

// runClient measures every figure at the interface's MTU and writes one
// line per figure to out.
func runClient(out io.Writer, o options) error {
	raw, err := openRaw(ifA, time.Second)
	if err != nil {
		return err
	}
	defer raw.close()
	s, err := newSide(0, ifA, o.pol)
	if err != nil {
		return err
	}
	defer s.close()
	c := &client{out: out, mtu: s.st.l.MTU(), c: countsFor(o.short), idle: o.idle, raw: raw, s: s, floors: map[int]time.Duration{}}
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

// report writes the figure of smp.
func (c *client) report(name string, size int, smp sample) {
	fmt.Fprintln(c.out, smp.figure(name, c.mtu, size, floorFor(c.floors, size)))
}

// floor measures the AF_PACKET echo for every size the MTU allows.
func (c *client) floor() error {
	ma, mb := macs()
	for _, size := range floorSizes(c.mtu) {
		e := newFloorEcho(c.raw, mb, ma, size)
		smp, err := measure(c.series(c.c.floor, nil, e.echo))
		if err != nil {
			return fmt.Errorf("floor %d B: %w", size, err)
		}
		c.floors[size] = smp.figure("", c.mtu, size, 0).Median
		c.report("floor", size, smp)
	}
	return nil
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
		c.report("transport", size, smp)
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
		c.report(f.name, 4096, smp)
	}
	return nil
}

// migrate measures vCPU 0 sent to the serving side and installed there,
// until its answer; the serving side sends the vCPU back when asked
// before the next one, untimed.
func (c *client) migrate() error {
	var st vcpu.State
	st.Reset(0, true)
	for i := range st.GPR {
		st.GPR[i] = uint64(i) << 12
	}
	st.RIP = 0x100000
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
	c.report("migrate", st.Size(), smp)
	return nil
}
