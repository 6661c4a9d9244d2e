package workload

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/big-iron/big-iron/cluster/trace"
)

func TestGeneratorsDeterministicAndInRange(t *testing.T) {
	for _, g := range append(All(), Litmus()...) {
		a, b := g(Params{VCPUs: 3, Length: 500, Seed: 9}), g(Params{VCPUs: 3, Length: 500, Seed: 9})
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: same seed, different streams", a.Name)
		}
		if len(a.Streams) != 3 || a.Accesses() != 1500 {
			t.Fatalf("%s: %d streams, %d accesses", a.Name, len(a.Streams), a.Accesses())
		}
		writes := 0
		for _, st := range a.Streams {
			for _, x := range st {
				if x.GPA/PageSize >= uint64(a.Pages) || x.GPA%8 != 0 {
					t.Fatalf("%s: access %#x outside %d pages or unaligned", a.Name, x.GPA, a.Pages)
				}
				if x.Write {
					writes++
				}
			}
		}
		if writes == 0 {
			t.Fatalf("%s: no writes", a.Name)
		}
	}
}

func TestTraceRoundTrip(t *testing.T) {
	s := Migratory(Params{VCPUs: 2, Length: 50, Seed: 1})
	var buf bytes.Buffer
	if err := WriteTrace(&buf, s); err != nil {
		t.Fatal(err)
	}
	got, err := ParseTrace(&buf, "migratory")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Streams, s.Streams) {
		t.Fatal("trace round trip changed the streams")
	}
}

// TestParseNodeTrace replays two nodes' traces of a real run, as their
// /trace endpoints serve them: each vCPU's faults become its accesses,
// node by node; migrations and faults no vCPU took are skipped.
func TestParseNodeTrace(t *testing.T) {
	node := func(evs ...trace.Event) string {
		var b []byte
		for i := range evs {
			b = append(evs[i].AppendJSON(b), '\n')
		}
		return string(b)
	}
	in := node(
		trace.Event{Kind: trace.KindFault, VCPU: 0, Addr: 0x2010, Write: true, Wait: 5000},
		trace.Event{Kind: trace.KindFault, VCPU: -1, Addr: 0x9000}, // the device node's read
		trace.Event{Kind: trace.KindMigrateOut, VCPU: 1, Node: 1, Bytes: 1312},
		trace.Event{Kind: trace.KindFault, VCPU: 1, Addr: 0x3000},
	) + node(
		trace.Event{Kind: trace.KindMigrateIn, VCPU: 1, Node: 0, Bytes: 1312},
		trace.Event{Kind: trace.KindInvalidate, Addr: 0x2000, Node: 0},
		trace.Event{Kind: trace.KindFault, VCPU: 1, Addr: 0x2018, Write: true},
	)
	s, err := ParseTrace(strings.NewReader(in), "run")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]Access{{{GPA: 0x2010, Write: true}}, {{GPA: 0x3000}, {GPA: 0x2018, Write: true}}}
	if !reflect.DeepEqual(s.Streams, want) || s.Pages != 4 {
		t.Fatalf("streams %v over %d pages, want %v over 4", s.Streams, s.Pages, want)
	}
}

func TestParseTraceErrors(t *testing.T) {
	for _, in := range []string{"", "# only\n", "0 r\n", "x r 0\n", "0 q 0\n", "0 r zz\n", "-1 r 0\n", "0 w 0xffffffffffffffff\n",
		`{"kind":"fault"` + "\n", `{"kind":"fault","gpa":4096}` + "\n", `{"kind":"fault","vcpu":5000,"gpa":4096}` + "\n",
		`{"kind":"fault","vcpu":0,"gpa":18446744073709551615}` + "\n", `{"kind":"migrate-in","vcpu":0,"gpa":0}` + "\n",
		"0 r 0\n" + `{"kind":"fault","vcpu":0,"gpa":0}` + "\n"} {
		if _, err := ParseTrace(strings.NewReader(in), "t"); err == nil {
			t.Errorf("%q: accepted", in)
		}
	}
}

func FuzzParseTrace(f *testing.F) {
	f.Add("0 r 0x1000\n1 w 8\n# c\n")
	f.Add(`{"seq":0,"t_ns":1,"kind":"fault","vcpu":1,"node":0,"gpa":8208,"write":true,"wait_ns":5,"bytes":0}` + "\n")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseTrace(strings.NewReader(in), "f")
		if err != nil {
			return
		}
		for _, st := range s.Streams {
			for _, a := range st {
				if a.GPA/PageSize >= uint64(s.Pages) {
					t.Fatalf("access %#x beyond %d pages", a.GPA, s.Pages)
				}
			}
		}
	})
}

func TestLitmusShapes(t *testing.T) {
	mp := MessagePassing(Params{VCPUs: 2, Length: 4})
	want := [][]Access{
		{{GPA: 0, Write: true}, {GPA: PageSize, Write: true}, {GPA: 0, Write: true}, {GPA: PageSize, Write: true}},
		{{GPA: PageSize}, {GPA: 0}, {GPA: PageSize}, {GPA: 0}},
	}
	if !reflect.DeepEqual(mp.Streams, want) {
		t.Fatalf("message passing: %v", mp.Streams)
	}
	sb := StoreBuffering(Params{VCPUs: 2, Length: 2})
	want = [][]Access{{{GPA: 0, Write: true}, {GPA: PageSize}}, {{GPA: PageSize, Write: true}, {GPA: 0}}}
	if !reflect.DeepEqual(sb.Streams, want) {
		t.Fatalf("store buffering: %v", sb.Streams)
	}
}

// TestSweepCoversMemory: each vCPU of Sweep touches every page, writing
// its own word and reading its neighbour's, and nothing outside memory.
func TestSweepCoversMemory(t *testing.T) {
	s := Sweep(Params{VCPUs: 3, Length: 2 * 3 * sweepPages})
	if s.Pages != 3*sweepPages || s.Accesses() != 3*2*3*sweepPages {
		t.Fatalf("%d pages, %d accesses", s.Pages, s.Accesses())
	}
	for v, st := range s.Streams {
		seen := map[uint64]bool{}
		for i, a := range st {
			if a.GPA/PageSize >= uint64(s.Pages) || a.Write != (i%2 == 0) {
				t.Fatalf("vCPU %d access %d: %+v", v, i, a)
			}
			seen[a.GPA/PageSize] = true
		}
		if len(seen) != s.Pages {
			t.Fatalf("vCPU %d touches %d of %d pages", v, len(seen), s.Pages)
		}
	}
}
