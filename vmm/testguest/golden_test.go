package testguest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
)

// golden pins every variant's image as it was built before Build was split
// into one function per stage: the SHA-256 of the bytes, the SHA-256 of
// the instruction listing (offset, length, mode and text of every
// instruction) and where code ends. A change to the payload must update
// these on purpose; a refactor must not change them at all.
var golden = map[Variant]struct {
	bytes, listing string
	codeEnd        int
}{
	VariantStandard: {
		"57729e052f901a4b26febc5ab458b107de4244640132567062cae7333ba05d73",
		"6e89a5e5582ccf6170e63225cd602892a0d28785222d4651c353c11b1dc30a17",
		483,
	},
	VariantTripleFault: {
		"7f4897f767087963143784fe5b411e2fcc0d9d7af3dc6bf8983082d7343b2bd7",
		"fbeec88298a8282d42f2ff9eeb19bf0f14b40fbf5e680013d3d5ddc3c8761d00",
		262,
	},
	VariantProbe: {
		"008e17713fbb335c9e1800603a30f152b39d3f2999f80d175d1e77f180425404",
		"c0b5d6f613a393392979d680e06a3c3b25b84a7eed5de4d8e892fd2b5fc24d6c",
		283,
	},
	VariantCounter: {
		"5cd4e537d7b2435afd1b26465982919a938d163d6aa09fa237a1be67a25b52cf",
		"d1093537275c59736a80d3736e3dca558ecb0d7d85c166275f11ae4fc3a7ad1a",
		726,
	},
	VariantPingPong: {
		"a492929400260fff20cda537dd3f2def5b40b6121df9f3520ded2fa0765692be",
		"2bbcce06396bcea924218a97702ef8d090b4fadfabe79a63f86b76c1c923808a",
		857,
	},
}

// listingHash hashes an image's instruction listing.
func listingHash(im *Image) string {
	h := sha256.New()
	for _, in := range im.Insts {
		fmt.Fprintf(h, "%d %d %d %s\n", in.Offset, in.Len, in.Mode, in.Intel)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestGoldenImages checks that Build(v) is byte for byte the pinned image
// for every variant.
func TestGoldenImages(t *testing.T) {
	for _, v := range Variants() {
		t.Run(v.String(), func(t *testing.T) {
			want, ok := golden[v]
			if !ok {
				t.Fatalf("no golden hashes for variant %v", v)
			}
			im, err := Build(v)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(im.Bytes)
			if got := hex.EncodeToString(sum[:]); got != want.bytes {
				t.Errorf("SHA-256 of Build(%v).Bytes = %s, want %s", v, got, want.bytes)
			}
			if got := listingHash(im); got != want.listing {
				t.Errorf("SHA-256 of Build(%v) listing = %s, want %s", v, got, want.listing)
			}
			if im.CodeEnd != want.codeEnd {
				t.Errorf("Build(%v).CodeEnd = %d, want %d", v, im.CodeEnd, want.codeEnd)
			}
		})
	}
	if len(golden) != len(Variants()) {
		t.Errorf("%d golden entries for %d variants", len(golden), len(Variants()))
	}
}
