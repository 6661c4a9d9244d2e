package exits

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"testing"
)

// noisyHost is a host CPUID whose every leaf and subleaf returns
// different, mixed bits (so that every mask a policy applies shows), with
// a maximum basic leaf of 0x20 and a maximum extended leaf of 0x80000021
// (both above what the policy passes through).
func noisyHost(leaf, sub uint32) CPUIDResult {
	mix := func(x uint32) uint32 {
		x ^= x >> 16
		x *= 0x7FEB352D
		x ^= x >> 15
		x *= 0x846CA68B
		x ^= x >> 16
		return x
	}
	s := mix(leaf*0x9E3779B9 ^ sub)
	r := CPUIDResult{EAX: mix(s + 1), EBX: mix(s + 2), ECX: mix(s + 3), EDX: mix(s + 4)}
	switch leaf {
	case 0:
		r.EAX = 0x20
	case 4:
		if sub >= 5 {
			r.EAX &^= 0x1F // no more cache levels
		} else {
			r.EAX |= 1
		}
	case 7:
		r.EAX = 3
	case 0xD:
		if sub%5 == 4 {
			r = CPUIDResult{}
		}
	case 0x80000000:
		r.EAX = 0x80000021
	}
	return r
}

// onesHost answers all ones everywhere but leaf 0's maximum.
func onesHost(leaf, sub uint32) CPUIDResult {
	if leaf == 0 {
		return CPUIDResult{EAX: 0x1F, EBX: ^uint32(0), ECX: ^uint32(0), EDX: ^uint32(0)}
	}
	return CPUIDResult{EAX: ^uint32(0), EBX: ^uint32(0), ECX: ^uint32(0), EDX: ^uint32(0)}
}

// writeAnswers writes to h what p answers for a grid of leaves, subleaves
// and APIC IDs: every basic leaf to 0x22, the hypervisor leaves, the
// KVM-compatible ones and the extended leaves, each at subleaves 0-20, 63
// and 64, on APIC IDs 0 and 3.
func writeAnswers(h hash.Hash, p *CPUIDPolicy) {
	var leaves []uint32
	for l := uint32(0); l <= 0x22; l++ {
		leaves = append(leaves, l)
	}
	for l := uint32(LeafHypervisor); l <= LeafHypervisorTime+1; l++ {
		leaves = append(leaves, l)
	}
	for l := uint32(LeafKVMCompat); l <= LeafKVMCompatFeatures+1; l++ {
		leaves = append(leaves, l)
	}
	for l := uint32(LeafExtMax); l <= LeafExtMax+0x22; l++ {
		leaves = append(leaves, l)
	}
	subs := []uint32{63, 64}
	for s := uint32(0); s <= 20; s++ {
		subs = append(subs, s)
	}
	for _, l := range leaves {
		for _, s := range subs {
			for _, apic := range []uint32{0, 3} {
				fmt.Fprintf(h, "%#x/%d@%d %+v\n", l, s, apic, p.Lookup(l, s, apic))
			}
		}
	}
}

// TestCPUIDPolicyGolden pins what NewCPUIDPolicy builds, as it was
// before the function was split per leaf group: for several
// configurations and hosts, the SHA-256 of the policy's entries, its
// maximum leaves and its answers over a grid of leaves (writeAnswers),
// or the error it returns.
func TestCPUIDPolicyGolden(t *testing.T) {
	hosts := map[string]HostCPUID{"fake": fakeHost, "noisy": noisyHost, "ones": onesHost}
	configs := map[string]CPUIDConfig{
		"default": {TSCKHz: 2_400_000, LAPICKHz: 1_000_000, VCPUs: 4},
		"linux":   {TSCKHz: 2_400_000, LAPICKHz: 1_000_000, VCPUs: 2, EmulatedAPIC: true, FXSAVEOnly: true, HideUnvirtualized: true, KVMCompatible: true},
		"crystal": {TSCKHz: 3_000_000, CrystalHz: 25_000_000, MaxBasicLeaf: 0x1F, VCPUs: 1},
		"fast":    {TSCKHz: 4_500_000, MaxBasicLeaf: 0x100, VCPUs: 255, HideUnvirtualized: true},
		"zero":    {TSCKHz: 1_000},
		"bad":     {TSCKHz: 1_000, MaxBasicLeaf: 0x15},
	}
	for cn, cfg := range configs {
		for hn, host := range hosts {
			name := cn + "/" + hn
			t.Run(name, func(t *testing.T) {
				h := sha256.New()
				p, err := NewCPUIDPolicy(cfg, host)
				if err != nil {
					fmt.Fprintf(h, "error %v\n", err)
				} else {
					fmt.Fprintf(h, "max %#x %#x cfg %+v\n", p.maxBasic, p.maxExt, p.cfg)
					for _, e := range p.entries {
						fmt.Fprintf(h, "%+v\n", e)
					}
					writeAnswers(h, p)
				}
				got := hex.EncodeToString(h.Sum(nil))
				if w, ok := cpuidGolden[name]; !ok || got != w {
					t.Errorf("%s: SHA-256 %s, want %s", name, got, w)
				}
			})
		}
	}
	if len(cpuidGolden) != len(configs)*len(hosts) {
		t.Errorf("%d golden entries for %d cases", len(cpuidGolden), len(configs)*len(hosts))
	}
}

// cpuidGolden holds the pinned hashes, by configuration/host.
var cpuidGolden = map[string]string{
	"bad/fake":      "ca440dfe696f809ef9d76be7d059d01494927ec72c062847dbc2673266c22f22",
	"bad/noisy":     "ca440dfe696f809ef9d76be7d059d01494927ec72c062847dbc2673266c22f22",
	"bad/ones":      "ca440dfe696f809ef9d76be7d059d01494927ec72c062847dbc2673266c22f22",
	"crystal/fake":  "d2934b15d0750841bba1c04feac3cde480ee0335803588fb45f560e5da839177",
	"crystal/noisy": "23470a1e789dd8e89d693ecaf541aa1cc22f4587835aacce5c53d6816a426d25",
	"crystal/ones":  "e0e30f550a650617ffe7db7d602f7af7b1dcd961d147a687153ed8dcdd791011",
	"default/fake":  "20cfcb08f08b30f2988777961481cdbf15a8b40575d407b22fe4d5a399eb3ee3",
	"default/noisy": "01c8ec918bc588dbc47724721d7526028ba14750cb4d1f1fafe154d68d18b9c0",
	"default/ones":  "7e4c48e71b9aed6db8d4c98f7a095fa32d2b97d5128ec8f92a74ae2a0eaeeb69",
	"fast/fake":     "c04dff022d79ce5f7f18809d72d880365b28d48d90f860cc4a7156e837fa7cb9",
	"fast/noisy":    "e220d08e549d7e60985dd2240f146b619de4e5801b3a28081ee090c1d77d937b",
	"fast/ones":     "4adec7931a1526ece4b927a0ce0f6ac2abc3170b124fc04216358ae6526c0cc3",
	"linux/fake":    "bc435be466c70811e7855aff76da8b83aaeb818a0a03ee5eeeafc4b691ea0f6f",
	"linux/noisy":   "6662cb2613dfd91e8b0abc9ce0246a74e267c7882b4f62a33291e5b78a7bfc65",
	"linux/ones":    "a54f6d5e4b975fc2456e38b75b1cb7542bcdd03bc0c178b4ce7cc0c9d940d10d",
	"zero/fake":     "480b4e4fde16e558e592fb28f0202396cf103b5a1fad6838ae8c734604e083ce",
	"zero/noisy":    "eaa5504bb9fbdd9e92c2c08e2e8276c711da5c825b595c90356ea9fa3b2a034c",
	"zero/ones":     "028c04dd53c04c6a836219824d21ed049dc7565349368cb5117153d3f02548f0",
}
