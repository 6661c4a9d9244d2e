package memlink

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/big-iron/big-iron/machine/link"
)

func mac(i int) link.MAC { return link.MAC{0x02, 0, 0, 0, 0, byte(i)} }

func frame(dst, src link.MAC, n byte) []byte {
	b := make([]byte, link.HeaderLen+4)
	link.PutHeader(b, dst, src, link.EtherTypeCluster)
	b[link.HeaderLen] = n
	return b
}

type sink struct{ got []byte }

func (s *sink) recv(f []byte) { s.got = append(s.got, f[link.HeaderLen]) }

func TestUnicastBroadcastAndDelay(t *testing.T) {
	sw := New(Config{Delay: time.Millisecond})
	var sinks [3]sink
	var ports [3]*Port
	for i := range ports {
		ports[i] = sw.AddPort(mac(i))
		ports[i].SetReceiver(sinks[i].recv)
	}
	if err := ports[0].Transmit(frame(mac(1), mac(0), 1)); err != nil {
		t.Fatal(err)
	}
	if err := ports[0].Transmit(frame(link.Broadcast, mac(0), 2)); err != nil {
		t.Fatal(err)
	}
	if n := sw.Advance(time.Millisecond - 1); n != 0 {
		t.Fatalf("delivered %d frames before the delay", n)
	}
	if n := sw.Advance(time.Millisecond); n != 3 {
		t.Fatalf("delivered %d frames, want 3", n)
	}
	if fmt.Sprint(sinks[0].got, sinks[1].got, sinks[2].got) != "[] [1 2] [2]" {
		t.Fatalf("got %v %v %v", sinks[0].got, sinks[1].got, sinks[2].got)
	}
	if err := ports[0].Transmit(make([]byte, link.HeaderLen+link.DefaultMTU+1)); !errors.Is(err, link.ErrFrameTooLong) {
		t.Fatalf("oversized frame: %v", err)
	}
}

func TestPartitionAndDown(t *testing.T) {
	sw := New(Config{})
	var sinks [3]sink
	var ports [3]*Port
	for i := range ports {
		ports[i] = sw.AddPort(mac(i))
		ports[i].SetReceiver(sinks[i].recv)
	}
	sw.Partition([]int{0}, []int{1, 2})
	ports[0].Transmit(frame(link.Broadcast, mac(0), 1))
	ports[1].Transmit(frame(link.Broadcast, mac(1), 2))
	sw.Advance(0)
	if fmt.Sprint(sinks[0].got, sinks[1].got, sinks[2].got) != "[] [] [2]" {
		t.Fatalf("partitioned: got %v %v %v", sinks[0].got, sinks[1].got, sinks[2].got)
	}
	sw.Heal()
	ports[2].SetUp(false)
	ports[0].Transmit(frame(link.Broadcast, mac(0), 3))
	sw.Advance(0)
	if fmt.Sprint(sinks[0].got, sinks[1].got, sinks[2].got) != "[] [3] [2]" {
		t.Fatalf("healed, port 2 down: got %v %v %v", sinks[0].got, sinks[1].got, sinks[2].got)
	}
	if err := ports[2].Transmit(frame(mac(0), mac(2), 4)); !errors.Is(err, link.ErrDown) {
		t.Fatalf("transmit on down port: %v", err)
	}
}

// run sends n frames through a faulty switch and returns what arrived.
func run(seed uint64, n int) ([]byte, Stats) {
	sw := New(Config{Seed: seed, Loss: 0.1, Duplicate: 0.1, Jitter: 5 * time.Millisecond})
	a, b := sw.AddPort(mac(1)), sw.AddPort(mac(2))
	var s sink
	b.SetReceiver(s.recv)
	for i := 0; i < n; i++ {
		a.Transmit(frame(mac(2), mac(1), byte(i)))
	}
	sw.Advance(time.Second)
	return s.got, sw.Stats()
}

func TestFaultsDeterministic(t *testing.T) {
	got1, st := run(42, 2000)
	got2, _ := run(42, 2000)
	if string(got1) != string(got2) {
		t.Fatal("same seed, different outcome")
	}
	got3, _ := run(43, 2000)
	if string(got1) == string(got3) {
		t.Fatal("different seeds, same outcome")
	}
	if st.Lost < 100 || st.Lost > 300 || st.Duplicated < 100 || st.Duplicated > 300 {
		t.Fatalf("fault rates off: %+v", st)
	}
	if uint64(len(got1)) != st.Delivered || st.Delivered != 2000-st.Lost+st.Duplicated {
		t.Fatalf("accounting: %d received, stats %+v", len(got1), st)
	}
	reordered := 0
	for i := 1; i < len(got1); i++ {
		if got1[i] < got1[i-1] && got1[i-1]-got1[i] < 128 {
			reordered++
		}
	}
	if reordered == 0 {
		t.Fatal("jitter did not reorder anything")
	}
}

func TestForwardAllocs(t *testing.T) {
	sw := New(Config{})
	a, b := sw.AddPort(mac(1)), sw.AddPort(mac(2))
	n := 0
	b.SetReceiver(func([]byte) { n++ })
	f := frame(mac(2), mac(1), 0)
	allocs := testing.AllocsPerRun(1000, func() {
		a.Transmit(f)
		sw.Advance(0)
	})
	if allocs != 0 || n == 0 {
		t.Fatalf("%v allocations per frame, %d frames", allocs, n)
	}
}
