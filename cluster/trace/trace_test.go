// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package trace

import (
	"encoding/json"
	"sync"
	"testing"
	"time"
)

func TestRecordAndRead(t *testing.T) {
	r := NewRing(3)
	r.Record(Event{Kind: KindFault}) // off: dropped
	if r.Recorded() != 0 {
		t.Fatal("an event recorded while off")
	}
	r.Start()
	for i := 0; i < 11; i++ {
		r.Record(Event{Kind: KindFault, VCPU: int32(i % 2), Addr: uint64(i) << 12, Wait: time.Duration(i) * time.Millisecond, Write: i%3 == 0})
	}
	got, next := r.Events(nil, 0, Filter{}, 0)
	if next != 11 || len(got) != 8 || got[0].Seq != 3 || got[7].Addr != 10<<12 || !got[0].Write || got[1].Write {
		t.Fatalf("after 11 events in a ring of 8: next %d, %+v", next, got)
	}
	one := int32(1)
	got, _ = r.Events(nil, 0, Filter{VCPU: &one, MinWait: 6 * time.Millisecond}, 0)
	if len(got) != 2 || got[0].Seq != 7 || got[1].Seq != 9 {
		t.Errorf("vCPU 1, waits of 6 ms and more: %+v", got)
	}
	if got, _ = r.Events(nil, 0, Filter{}, 2); len(got) != 2 || got[1].Seq != 10 {
		t.Errorf("the newest 2: %+v", got)
	}
	if got, _ = r.Events(nil, next, Filter{}, 0); len(got) != 0 {
		t.Errorf("nothing new since %d: %+v", next, got)
	}
	r.Record(Event{Kind: KindMigrateOut, VCPU: 1, Node: 3, Bytes: 4096})
	if got, _ = r.Events(nil, next, Filter{Kind: KindMigrateOut}, 0); len(got) != 1 || got[0].Node != 3 || got[0].Bytes != 4096 {
		t.Errorf("the migration since %d: %+v", next, got)
	}
	r.Stop()
	r.Record(Event{Kind: KindFault})
	if r.Recorded() != 12 {
		t.Errorf("recorded after Stop: %d", r.Recorded())
	}
}

func TestNilRingIsOff(t *testing.T) {
	var r *Ring
	if r.On() {
		t.Error("a nil ring is on")
	}
}

// TestConcurrent: writers and a reader at once; every event read is
// whole (its fields all derived from one value).
func TestConcurrent(t *testing.T) {
	r := NewRing(6)
	r.Start()
	check := func(evs []Event) {
		for _, e := range evs {
			if uint64(e.Wait) != e.Addr || e.Bytes != uint32(e.Addr) || e.VCPU != int32(e.Addr%1000) || e.Node != uint16(e.Addr) {
				t.Errorf("a torn event: %+v", e)
			}
		}
	}
	var writers sync.WaitGroup
	started, stop := make(chan struct{}), make(chan struct{})
	for w := 0; w < 4; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			<-started
			for i := 0; i < 20000; i++ {
				x := uint64(w*100000 + i)
				r.Record(Event{Kind: KindFault, Addr: x, Wait: time.Duration(x), Bytes: uint32(x), VCPU: int32(x % 1000), Node: uint16(x)})
			}
		}()
	}
	done := make(chan int)
	go func() {
		var buf []Event
		var from uint64
		reads := 0
		close(started) // the writers start once the reader runs
		for {
			select {
			case <-stop:
				done <- reads
				return
			default:
			}
			buf, from = r.Events(buf[:0], from, Filter{}, 0)
			check(buf)
			reads += len(buf)
		}
	}()
	writers.Wait()
	close(stop)
	reads := <-done
	final, _ := r.Events(nil, 0, Filter{}, 0)
	check(final)
	if len(final) != 64 || r.Recorded() != 80000 {
		t.Errorf("after the writers: %d events readable of %d recorded, want the ring's 64", len(final), r.Recorded())
	}
	t.Logf("the reader saw %d events while the writers wrote", reads)
}

func TestRecordAllocs(t *testing.T) {
	r := NewRing(4)
	e := Event{Kind: KindFault, Addr: 1}
	for _, on := range []bool{false, true} {
		if on {
			r.Start()
		}
		if n := testing.AllocsPerRun(1000, func() { r.Record(e) }); n != 0 {
			t.Errorf("Record (on %v): %v allocations", on, n)
		}
	}
}

func TestJSON(t *testing.T) {
	e := Event{Seq: 5, Time: 1500 * time.Microsecond, Kind: KindFault, VCPU: -1, Node: 2, Addr: 0x1000, Write: true, Wait: time.Millisecond, Bytes: 4096}
	var m map[string]any
	if err := json.Unmarshal(e.AppendJSON(nil), &m); err != nil {
		t.Fatalf("%s: %v", e.AppendJSON(nil), err)
	}
	if m["kind"] != "fault" || m["gpa"] != float64(0x1000) || m["write"] != true || m["vcpu"] != float64(-1) || m["wait_ns"] != float64(1e6) {
		t.Errorf("JSON: %v", m)
	}
	if s := e.String(); s != "    0.001500 fault       gpa 0x1000 write, waited 1ms" {
		t.Errorf("String: %q", s)
	}
}

func TestParseKind(t *testing.T) {
	for k := Kind(1); k < numKinds; k++ {
		if got, err := ParseKind(k.String()); got != k || err != nil {
			t.Errorf("ParseKind(%s) = %v, %v", k, got, err)
		}
	}
	if _, err := ParseKind("faults"); err == nil {
		t.Error("ParseKind took faults")
	}
}

func BenchmarkRecord(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			r := NewRing(12)
			if on {
				r.Start()
			}
			e := Event{Kind: KindFault, Addr: 0x1000, Wait: time.Microsecond}
			for i := 0; i < b.N; i++ {
				if r.On() {
					r.Record(e)
				}
			}
		})
	}
}
