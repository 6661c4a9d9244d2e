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
	"crystal/fake":  "2c7daa3bdb8f696380e342dbb7f0d57277e015ff9f71c04a6507a4e56b820d4e",
	"crystal/noisy": "d89042d6115110ec0cb01da1dbbc3097cbc566677dacd589eae38049ec8e7e92",
	"crystal/ones":  "1a54eec06ebe24dc8c797f63f0e6a7e675aeb3f303963a1ce3e6a5b90edcbdfd",
	"default/fake":  "3055f7b3007ea5a9e3c67d1cb59d4af494bda214450900d87a183b43d837c766",
	"default/noisy": "2b56f5e3ecd0a4c6eee9849f93021ea5a0ac8db6bece9ed1d6738a690aaa59f4",
	"default/ones":  "1563cad6235911e403f58deebc5a506771d0a9e69c9977b1a6214d5ed9770196",
	"fast/fake":     "d7cdf67aa0202e0f07644da84289ac170b6396635c6883c85935dc701162f672",
	"fast/noisy":    "e69b51742b87c18a2f753a16d85213b2f80eeccb0e5486b461ef338eb235ff50",
	"fast/ones":     "42511886a4867f56bf7bd73b22d4aaa4ec6ba2e19ea616c3f7b061706fa6118f",
	"linux/fake":    "7a80834ea890da2269e3317ded5c550df5fe144b78850105316018d6405f88a6",
	"linux/noisy":   "3183e1e752f61a61ad449f556cd220619a0ad219c4184cb364946e31e7ce6e42",
	"linux/ones":    "9bfae2f5ae86fbc13cf7c39eee6b54a832cd30b1fd11ad7cb8ae73c2a99b351e",
	"zero/fake":     "a14bd693993e54573799c369c71476d13cadc4285ee9b37a78a72eb5d9191c81",
	"zero/noisy":    "9ecdf440c28b2f02d9345662ccbd728c369e8d12a231e5b1e81d21a7f72c0e24",
	"zero/ones":     "737e13e254fb25cab7c8933e984c27da054dbb8a36d5012cf9487ba118d035f6",
}
