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
	"crystal/fake":  "563f897cb8beb949f9d1c90f083cea94ed8fd0cde2503248134645dfd38542f3",
	"crystal/noisy": "d95125259c79400684b3e462702186772eed0e18e1a913b2b67bc5ff8de74a1a",
	"crystal/ones":  "53ec6191a3614d63d20b22bee9dbb12af25ae6654f3dcfc298ea6ed02cd3cbed",
	"default/fake":  "909d2f6ba1ca33ba1d93033746b6e45d6b80373a2867c90337e50be0107280c2",
	"default/noisy": "711ab65664ade304849880f0ccf9b6a8e0ba2abcca390bc6b780f173355ed5a7",
	"default/ones":  "1d08637961c8e06d4d1c852a63945ec0e64a30667d393118eb4d2f28181d1474",
	"fast/fake":     "1202d9915a8fe590b055a8a76043d7b100ddea4df1cf47bbf7717ee30b8ae9f0",
	"fast/noisy":    "a8cbc0e4031a0d8ce52103c6d2a155e95f0b6e3d529f6b2d81dea23b1243dd02",
	"fast/ones":     "dbf05fcbfd138becbd0d0ebd0d97d41be94275e92006db8f14f79db3482bd8ba",
	"linux/fake":    "7ea1be8d16c828c42a05a0860aaf197bb0ea37c48e08b9ffc11d24583be7744a",
	"linux/noisy":   "5f37d8de63b3353f1424979e31d8c3f71b1557d5826fe3a1517a9f964bb13ab2",
	"linux/ones":    "b28212844c46a2d788a3c00e4f10206dc2b0bec78f886e1c0c4a654f3279df26",
	"zero/fake":     "410008e8a9e09b208cc998c02c83c13d9d29b420b8641d534e9b9b52a183134f",
	"zero/noisy":    "92f6ff3bdc23020085dfbea31d934140af4faa8adb84df7c3a448e97a75166c2",
	"zero/ones":     "e5d2d2950025f820a40bb8686ae2e801dc985b6a0af731ca6fbf80425bda883f",
}
