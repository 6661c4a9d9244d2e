//go:build linux && amd64

package afpacket

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/netstack/cluster"
)

// netns makes a network namespace holding a veth pair va<->vb with the
// given MTU, and removes it when the test ends. It skips the test where
// that is not possible (not root, no ip(8), no namespaces).
func netns(t testing.TB, mtu int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("afpacket: needs root to create a network namespace and veth pair")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("afpacket: ip(8) not installed (iproute2)")
	}
	ns := fmt.Sprintf("bi-afp-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("afpacket: cannot create network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	for _, args := range [][]string{
		{"-n", ns, "link", "add", "va", "mtu", fmt.Sprint(mtu), "type", "veth", "peer", "name", "vb", "mtu", fmt.Sprint(mtu)},
		{"-n", ns, "link", "set", "va", "up"},
		{"-n", ns, "link", "set", "vb", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Skipf("afpacket: ip %v: %v: %s", args, err, out)
		}
	}
	return ns
}

// openIn opens AF_PACKET links on the named interfaces inside namespace ns.
// It works on a locked thread that enters the namespace and then exits
// with its goroutine, so no other goroutine ever runs in the namespace; the
// sockets stay bound to it.
func openIn(t testing.TB, ns string, etype link.EtherType, names ...string) []*Link {
	t.Helper()
	var links []*Link
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if _, _, e := syscall.RawSyscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			errc <- fmt.Errorf("setns: %w", e)
			return
		}
		for _, name := range names {
			l, err := Open(name, etype)
			if err != nil {
				errc <- err
				return
			}
			links = append(links, l)
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		for _, l := range links {
			l.Close()
		}
		t.Fatalf("open links in %s: %v", ns, err)
	}
	t.Cleanup(func() {
		for _, l := range links {
			l.Close()
		}
	})
	return links
}

// sysSetns is setns(2)'s number on x86-64 (arch/x86/entry/syscalls/syscall_64.tbl),
// which the syscall package does not name.
const sysSetns = 308

// lockedEndpoint serializes an Endpoint between the link's receive
// goroutine, a ticker and the test.
type lockedEndpoint struct {
	mu sync.Mutex
	ep *cluster.Endpoint
}

func TestTransportOverVeth(t *testing.T) {
	for _, mtu := range []int{link.DefaultMTU, link.JumboMTU} {
		t.Run(fmt.Sprint("mtu", mtu), func(t *testing.T) {
			ns := netns(t, mtu)
			ls := openIn(t, ns, link.EtherTypeCluster, "va", "vb")
			if ls[0].MTU() != mtu || ls[0].MAC() == ls[1].MAC() || !ls[0].Up() {
				t.Fatalf("links: mtu %d macs %v %v up %v", ls[0].MTU(), ls[0].MAC(), ls[1].MAC(), ls[0].Up())
			}
			start := time.Now()
			clock := func() time.Duration { return time.Since(start) }
			key := bytes.Repeat([]byte{7}, cluster.KeyLen)
			var got [][]byte
			var eps [2]*lockedEndpoint
			for i := range eps {
				le := &lockedEndpoint{}
				cfg := cluster.Config{ID: cluster.NodeID(i + 1), Key: key, Link: ls[i], Clock: clock, CounterBase: 1}
				if i == 1 {
					cfg.OnMessage = func(_ cluster.NodeID, _ uint8, m []byte) { got = append(got, bytes.Clone(m)) }
				}
				ep, err := cluster.NewEndpoint(cfg)
				if err != nil {
					t.Fatal(err)
				}
				le.ep = ep
				ls[i].SetReceiver(func(f []byte) {
					le.mu.Lock()
					le.ep.HandleFrame(f)
					le.mu.Unlock()
				})
				eps[i] = le
			}
			eps[0].ep.AddPeer(2, ls[1].MAC())
			eps[1].ep.AddPeer(1, ls[0].MAC())
			for _, l := range ls {
				l.Start()
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				tk := time.NewTicker(time.Millisecond)
				defer tk.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tk.C:
						for _, le := range eps {
							le.mu.Lock()
							le.ep.Tick()
							le.mu.Unlock()
						}
					}
				}
			}()
			defer func() { close(stop); wg.Wait() }()

			const count = 300
			want := make([][]byte, count)
			for i := range want {
				want[i] = bytes.Repeat([]byte{byte(i)}, 1+(i*997)%(8<<10))
			}
			deadline := time.Now().Add(20 * time.Second)
			for i := 0; i < count; {
				eps[0].mu.Lock()
				err := eps[0].ep.Send(2, 1, want[i])
				eps[0].mu.Unlock()
				switch {
				case err == nil:
					i++
				case err == cluster.ErrBusy:
					time.Sleep(200 * time.Microsecond)
				default:
					t.Fatal(err)
				}
				if time.Now().After(deadline) {
					t.Fatalf("sending stalled at message %d", i)
				}
			}
			for {
				eps[1].mu.Lock()
				n := len(got)
				eps[1].mu.Unlock()
				if n == count {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("received %d of %d messages", n, count)
				}
				time.Sleep(time.Millisecond)
			}
			eps[1].mu.Lock()
			defer eps[1].mu.Unlock()
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("message %d differs", i)
				}
			}
			ps, _ := eps[1].ep.PeerStats(1)
			t.Logf("mtu %d: %d messages, %d frames in, stats %+v", mtu, count, ps.FramesIn, eps[1].ep.Stats().Drops)
		})
	}
}

// TestEtherTypeFilter checks that a link sees only its EtherType.
func TestEtherTypeFilter(t *testing.T) {
	ns := netns(t, link.DefaultMTU)
	cl := openIn(t, ns, link.EtherTypeCluster, "vb")[0]
	other := openIn(t, ns, link.EtherTypeIPv4, "va")[0]
	sender := openIn(t, ns, link.EtherTypeCluster, "va")[0]
	var mu sync.Mutex
	var seen []link.EtherType
	cl.SetReceiver(func(f []byte) {
		h, _ := link.ParseHeader(f)
		mu.Lock()
		seen = append(seen, h.Type)
		mu.Unlock()
	})
	cl.Start()
	f := make([]byte, 64)
	link.PutHeader(f, cl.MAC(), other.MAC(), link.EtherTypeIPv4)
	if err := other.Transmit(f); err != nil {
		t.Fatal(err)
	}
	link.PutHeader(f, cl.MAC(), sender.MAC(), link.EtherTypeCluster)
	if err := sender.Transmit(f); err != nil {
		t.Fatal(err)
	}
	if err := sender.Transmit(make([]byte, link.HeaderLen+link.DefaultMTU+1)); err != link.ErrFrameTooLong {
		t.Fatalf("oversized frame: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != link.EtherTypeCluster {
		t.Fatalf("received EtherTypes %v, want only the cluster one", seen)
	}
}

// BenchmarkEcho measures one frame from va to vb and back over the veth
// pair, and the allocations of the two links' send and receive paths.
func BenchmarkEcho(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprint(size, "B"), func(b *testing.B) {
			ns := netns(b, link.DefaultMTU)
			ls := openIn(b, ns, link.EtherTypeCluster, "va", "vb")
			back := make(chan struct{}, 1)
			ls[1].SetReceiver(func(f []byte) {
				copy(f[0:6], f[6:12])
				ls[1].Transmit(f)
			})
			ls[0].SetReceiver(func([]byte) { back <- struct{}{} })
			ls[0].Start()
			ls[1].Start()
			f := make([]byte, link.HeaderLen+size)
			link.PutHeader(f, ls[1].MAC(), ls[0].MAC(), link.EtherTypeCluster)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := ls[0].Transmit(f); err != nil {
					b.Fatal(err)
				}
				<-back
			}
		})
	}
}

// TestPoll: a link whose receive loop never started takes in what has
// arrived by Poll, at most budget frames a call, hands them to its
// receiver, and returns 0 at once when nothing waits, allocating nothing.
func TestPoll(t *testing.T) {
	ns := netns(t, link.DefaultMTU)
	ls := openIn(t, ns, link.EtherTypeCluster, "va", "vb")
	sender, rx := ls[0], ls[1]
	var got []byte
	rx.SetReceiver(func(f []byte) { got = append(got, f[link.HeaderLen]) })
	if n := rx.Poll(8); n != 0 {
		t.Fatalf("Poll with nothing sent: %d frames", n)
	}
	f := make([]byte, 64)
	link.PutHeader(f, rx.MAC(), sender.MAC(), link.EtherTypeCluster)
	for i := range 5 {
		f[link.HeaderLen] = byte(i)
		if err := sender.Transmit(f); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); len(got) < 5 && time.Now().Before(deadline); {
		if n := rx.Poll(2); n > 2 {
			t.Fatalf("Poll(2) took %d frames", n)
		}
	}
	if !bytes.Equal(got, []byte{0, 1, 2, 3, 4}) {
		t.Fatalf("frames polled: %v, want [0 1 2 3 4]", got)
	}
	if a := testing.AllocsPerRun(100, func() { rx.Poll(8) }); a != 0 {
		t.Errorf("Poll with nothing waiting: %v allocations", a)
	}
}

// TestRingWrapsAndFillsSlots: frames of every size up to the MTU's, more
// of them than the receive ring has slots, arrive whole and in order
// through Poll and through the receive loop, at both MTUs the cluster
// uses (a frame of HeaderLen+MTU bytes must fit a slot after the
// kernel's headers).
func TestRingWrapsAndFillsSlots(t *testing.T) {
	for _, mtu := range []int{link.DefaultMTU, 9000} {
		for _, loop := range []bool{false, true} {
			t.Run(fmt.Sprintf("mtu%d/loop=%v", mtu, loop), func(t *testing.T) {
				ns := netns(t, mtu)
				ls := openIn(t, ns, link.EtherTypeCluster, "va", "vb")
				sender, rx := ls[0], ls[1]
				got := make(chan []byte, ringSlots)
				rx.SetReceiver(func(f []byte) { got <- bytes.Clone(f) })
				if loop {
					rx.Start()
				}
				sizes := []int{link.HeaderLen + 1, 60, link.HeaderLen + mtu/2, link.HeaderLen + mtu}
				for i := range 3 * ringSlots {
					f := make([]byte, sizes[i%len(sizes)])
					link.PutHeader(f, rx.MAC(), sender.MAC(), link.EtherTypeCluster)
					for j := link.HeaderLen; j < len(f); j++ {
						f[j] = byte(i + j)
					}
					if err := sender.Transmit(f); err != nil {
						t.Fatalf("frame %d: %v", i, err)
					}
					var r []byte
					for deadline := time.Now().Add(5 * time.Second); r == nil; {
						if !loop {
							rx.Poll(1)
						}
						select {
						case r = <-got:
						default:
							if time.Now().After(deadline) {
								t.Fatalf("frame %d of %d bytes did not arrive", i, len(f))
							}
						}
					}
					// A short frame may come padded to 60 bytes.
					if len(r) < len(f) || !bytes.Equal(r[:len(f)], f) || len(r) > max(len(f), 60) {
						t.Fatalf("frame %d: got %d bytes, want %d: % x", i, len(r), len(f), r[:min(len(r), 32)])
					}
				}
			})
		}
	}
}

// BenchmarkPollEmpty is what a waiter pays for each look at the link
// while no frame has come: a load from the receive ring.
func BenchmarkPollEmpty(b *testing.B) {
	ns := netns(b, link.DefaultMTU)
	rx := openIn(b, ns, link.EtherTypeCluster, "va")[0]
	rx.SetReceiver(func([]byte) {})
	for b.Loop() {
		rx.Poll(8)
	}
}
