package memory

import (
	"errors"
	"testing"
)

// FuzzEngine feeds one engine, with homes that move and a bound on
// copies, a stream of its own faults and evictions and of messages from
// peers that may lie (any kind, sender, requester, flags, page and
// version): it must never panic, every failure must be ErrProtocol,
// ErrNoFrames or a fault beyond memory, and while it has not failed its
// books must balance: the pages it homes counted, and its copy frames
// accounted for. Walk windows open, change and end in the same stream,
// so lying peers meet open and draining windows too; a merge may also
// fail with ErrWindowConflict, and the windows' counts must match their
// slots.
func FuzzEngine(f *testing.F) {
	f.Add([]byte{0, 1, 1, 2, 0, 1, 4, 0, 1, 0x11})
	f.Add([]byte{1, 2, 2, 1, 0, 1, 1, 0, 0, 0, 2, 0, 3, 0, 4, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		const pages, nodes = 6, 3
		perm := make(eptSlice, pages)
		frames := &countingFrames{}
		e, err := NewEngine(Config{Self: 0, Nodes: nodes, Pages: pages, Perm: perm, Frames: frames,
			CopyFrames: 2, FirstTouch: true, MoveAfter: 2, HomeRoom: 2, Windows: true})
		if err != nil {
			t.Fatal(err)
		}
		out := NewOutbox()
		for len(b) >= 3 {
			op, arg, v := b[0], b[1], b[2]
			b = b[3:]
			gpa := uint64(arg%(pages+1)) << pageShift // one page beyond memory
			switch op % 6 {
			case 0:
				_, err = e.Fault(gpa, v&1 != 0, out)
			case 1:
				_, err = e.Evict(gpa, out)
			case 4:
				// A walk (or a store) through a window: the accessed
				// bit, or a software value.
				if e.OpenWindow(gpa) || perm[arg%pages] == AccessReadWrite {
					if f := e.pages[arg%pages].frame; f != nil {
						words(f)[v%8] |= uint64(v)
					}
				}
			case 5:
				if v&1 != 0 {
					_, err = e.CloseWindows(out)
				} else {
					_, err = e.FlushWindows(out)
				}
			default:
				m := Message{Kind: Kind(1 + v%uint8(kindLimit-1)), Src: NodeID(1 + arg%(nodes-1)), Dst: 0,
					Requester: NodeID(v>>4) % nodes, Flags: op & flagsKnown, GPA: gpa, Version: uint64(v >> 6)}
				if m.Flags&FlagHasData != 0 {
					m.Data = new(Page)
				}
				err = e.HandleMessage(&m, out)
			}
			out.Reset()
			if err != nil {
				if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrNoFrames) && !errors.Is(err, ErrWindowConflict) && gpa < pages<<pageShift {
					t.Fatalf("unexpected error: %v", err)
				}
				break
			}
			homes := 0
			for p := range uint64(pages) {
				if e.Home(p<<pageShift) == 0 {
					homes++
				}
			}
			if homes != e.Homes() || e.Homes() > e.startHomes+2 {
				t.Fatalf("homes %d pages by its map, %d by its count (started with %d, room 2)", homes, e.Homes(), e.startHomes)
			}
			used := 0
			for i := range e.slots {
				if e.slots[i].used {
					used++
				}
			}
			if used != e.open+e.draining {
				t.Fatalf("%d window slots in use, %d open and %d draining counted", used, e.open, e.draining)
			}
			if got := e.copies + len(e.free) + len(e.deferred); got != e.copyFrames || e.copyFrames > 2 {
				t.Fatalf("%d copies and %d pool frames, %d counted, bound 2", e.copies, len(e.free)+len(e.deferred), e.copyFrames)
			}
		}
		e.Close()
		if frames.held != 0 {
			t.Fatalf("%d frames not given back at Close", frames.held)
		}
	})
}
