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
// or the error it returns. The hashes changed once since, on purpose,
// when leaf 6 began to offer ARAT.
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
	"crystal/fake":  "7f3377c1c014e955f98d15ded49f91b2e93a0b188ee8b058b9addb2d35834b38",
	"crystal/noisy": "9295d0703bb5aaca0d2ebe505fc50d88d2643e9377d3df67e30eb93ab362c4a4",
	"crystal/ones":  "bcbd08a585b0ef6e89333e7ce3da89a64bb994489762adcdd19769ecf867b2c8",
	"default/fake":  "c08a59134bce353c994af278c7ee9e04638b6a2250a98b6a731df95aee24ab76",
	"default/noisy": "f95fd66089bf52b15c8f06659595a95352331945215ce60be488647aad7a77fc",
	"default/ones":  "278de7f551e9bdd6e85f63cbd0609b5495c8bd6f119d89428046937d8b6047d9",
	"fast/fake":     "a83c667e7c5f8506bafe1a41f229a54d6183be2dc013f9cd09c700d5120a07dc",
	"fast/noisy":    "445410bb963c0e250f6456aa97ad767d508727ea5940b716f992bf77f0837bf1",
	"fast/ones":     "5d60b19b0859ac057e3b34b011d1002c916b73f9e54b5a073aea2f73c9e821ec",
	"linux/fake":    "bec33bad6844f4c8ac2524cf969f63c6fed6471fd7d612c7c16ae385b12f9b9c",
	"linux/noisy":   "06b08b5893bd5352e4c6e55fe541e42d5ed98ff827e2f0cab5a5845237139965",
	"linux/ones":    "638584971a3fbc832f11a529877904da8ff87c35227e7bc5a9ececd2177b112a",
	"zero/fake":     "3967ee8b547b5791ea25d8d7758c7267061434e2a92b8f735f9aab3e597468d2",
	"zero/noisy":    "982dd2a200458542ee9fd195747873927a2c5fc629d760adaa509f78a70cb986",
	"zero/ones":     "89321204744806316e2dadc38a6ea5aee5c84e070f92c7c2c20d359461554c84",
}
