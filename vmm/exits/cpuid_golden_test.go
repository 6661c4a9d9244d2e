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
	"crystal/fake":  "d00bd467d857532d01951b414095373714eadfc8c2be88c41ecb4cd890f3cb45",
	"crystal/noisy": "5849637f478ea8642ae6638ed9f56abaf01b2a64abaf01e264a744bf15f8e7a5",
	"crystal/ones":  "eb9bd874ab262668e55ffd6a29aa276a2b141909e39043b7eecc5b945e62f99f",
	"default/fake":  "b0d6abace0f267283012dfe051ef84d3d624b9ed43a7d97a49d0a7584657a214",
	"default/noisy": "ef8c32b73c4aa7c76860099a6ab993a7dc8c16d45662cafdcd49278373ea3349",
	"default/ones":  "68f82703967b7ead2d3a32d2de695c066b18cb8cc4e0af6538ea1c3e01724c69",
	"fast/fake":     "79fe8d3da6470e3da19a05f62e5d622fee3b6bfd1f7ad42d054d703c22879130",
	"fast/noisy":    "8c151493d9a8c9aa04429409214074db4d83ff866f459f588d925f6b72c44e94",
	"fast/ones":     "15fc555c7c8673f69b0939f438cecf850bec8202aa2e26c34d40e579a7e2d007",
	"linux/fake":    "5be8792cd662ae037df567f7c138b93204ea1c880ca767c532b16501bc647961",
	"linux/noisy":   "07fb6833d9d62ce97f79466625b1b2226de21028be9ed652ff97966e9be3ecac",
	"linux/ones":    "5764ffc34bde5d02deaea821e85a06a3572bb4370822f8a7bced3404932627f9",
	"zero/fake":     "1fe75b08b1e72b53f5154e27c90537a2599ba024b374dc2a93cc6a7840f8055c",
	"zero/noisy":    "e3a54a3bf51243276c6057ef8271a1e8c134e10261ab1f5ae72e98a2680f616f",
	"zero/ones":     "2f85d8ba2bf321f8cf83e78ed491fd4544360bee98722046c50c8274afcd4bd8",
}
