// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package console

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/netstack/nbd"
	"github.com/big-iron/big-iron/vmm/devices/virtio"
)

type fakeDisks []DiskInfo

func (f fakeDisks) Disks() []DiskInfo { return f }

// TestDisks shows a network disk with its connection and a RAM disk
// without one.
func TestDisks(t *testing.T) {
	nbdDisk, _ := ParseDisk("nbd://10.0.2.2:10809/d")
	ram, _ := ParseDisk("ram:8M")
	st := &nbd.Status{Addr: "10.0.2.2:10809", Export: "d", State: nbd.StateReconnecting, InFlight: 3, Reconnects: 2,
		LastError: errors.New("connection reset"), Latency: nbd.Latency{Count: 2, Total: 3 * time.Millisecond, Max: 2 * time.Millisecond}}
	l := fakeDisks{
		{VM: 1, Name: "vda", Spec: nbdDisk, Size: 64 << 20, Block: virtio.BlockStats{Reads: 10, BytesRead: 40960, Writes: 2, BytesWritten: 1 << 20, InFlight: 3}, NBD: st},
		{VM: 1, Name: "vdb", Spec: ram, Size: 8 << 20},
	}
	var out bytes.Buffer
	if err := DisksCommand(l).Run(&out, nil); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"vm 1 vda nbd://10.0.2.2:10809/d, 64 MiB: 3 in flight; read 10 (40 KiB), written 2 (1 MiB)",
		"server 10.0.2.2:10809: reconnecting, 3 in flight, 0 queued; latency mean 1.5ms, max 2ms; reconnects 2; last error: connection reset",
		"vm 1 vdb ram:8M, 8 MiB: 0 in flight",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("want %q in:\n%s", want, s)
		}
	}
	if strings.Count(s, "server") != 1 {
		t.Errorf("a RAM disk has no server:\n%s", s)
	}
	out.Reset()
	DisksCommand(fakeDisks{}).Run(&out, nil)
	if !strings.Contains(out.String(), "no guest has a disk") {
		t.Errorf("no disks: %q", out.String())
	}
}

// netGuest is a guest with a network card.
type netGuest struct {
	fakeGuest
	st virtio.NetStatus
}

func (g *netGuest) NetStatus() (virtio.NetStatus, bool) { return g.st, true }

// TestNetStatus: vm stat ID shows the guest's card, its traffic and its
// drops by reason, and nothing for a guest without one.
func TestNetStatus(t *testing.T) {
	g := &netGuest{st: virtio.NetStatus{MAC: [6]byte{0x0a, 0xb1, 0, 0, 0, 1}, RxFrames: 3, RxBytes: 3000, TxFrames: 2, TxBytes: 1 << 20}}
	g.st.Drops[virtio.DropTxBadSource] = 5
	var out bytes.Buffer
	writeNetStatus(&out, g)
	s := out.String()
	if !strings.Contains(s, "network card 0a:b1:00:00:00:01: received 3 frames (2.9 KiB), sent 2 (1 MiB), 0 waiting") ||
		!strings.Contains(s, "dropped 5: "+virtio.DropTxBadSource.String()) || strings.Count(s, "dropped") != 1 {
		t.Errorf("vm stat's card:\n%s", s)
	}
	out.Reset()
	writeNetStatus(&out, &fakeGuest{})
	if out.Len() != 0 {
		t.Errorf("a guest without a card: %q", out.String())
	}
}
