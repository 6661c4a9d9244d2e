package hostmem

import (
	"errors"
	"testing"
)

func TestAllocFree(t *testing.T) {
	m := New(0x10_0000, 3)
	seen := map[uint64]bool{}
	for i := 0; i < 3; i++ {
		f, err := m.AllocFrame()
		if err != nil {
			t.Fatal(err)
		}
		if f < m.Base() || f >= m.End() || f%FrameSize != 0 || seen[f] {
			t.Fatalf("bad or repeated frame %#x", f)
		}
		seen[f] = true
		if m.Frame(f)[7] != Poison {
			t.Fatalf("new frame %#x not poisoned", f)
		}
		m.Frame(f)[7] = 1
	}
	if _, err := m.AllocFrame(); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("fourth AllocFrame = %v, want ErrNoMemory", err)
	}
	if m.InUse() != 3 {
		t.Fatalf("InUse = %d, want 3", m.InUse())
	}
	for f := range seen {
		m.FreeFrame(f)
	}
	if m.InUse() != 0 {
		t.Fatalf("InUse = %d after freeing all", m.InUse())
	}
}

func TestFailAfter(t *testing.T) {
	m := New(0, 8)
	m.FailAfter(1)
	if _, err := m.AllocFrame(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AllocFrame(); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("injected failure missing: %v", err)
	}
	if _, err := m.AllocFrame(); err != nil {
		t.Fatalf("failure repeated: %v", err)
	}
}

func mustPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", name)
		}
	}()
	f()
}

func TestMisuseIsCaught(t *testing.T) {
	m := New(0x1000, 2)
	f, _ := m.AllocFrame()
	m.FreeFrame(f)
	mustPanic(t, "double free", func() { m.FreeFrame(f) })
	mustPanic(t, "access to free frame", func() { m.Frame(f) })
	mustPanic(t, "foreign frame", func() { m.Frame(0x9000) })
	mustPanic(t, "misaligned frame", func() { m.Frame(0x1008) })
}
