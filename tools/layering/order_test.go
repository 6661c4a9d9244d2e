// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package layering

import (
	"fmt"
	"slices"
	"testing"
)

// layers are the top-level folders of the image's code, bottom first: a
// package may import packages of its own folder and of folders below it,
// never above (test files aside). The root is the image's main package.
var layers = []string{
	"machine",     // the machine: board bring-up, boot formats, NIC drivers' contract and raw links, page size, virtio's numbers
	"vmm",         // the VMM on one node: VT-x, EPT, the run loop, exits, device models, guest memory, vCPU state
	"netstack",    // the node's network: NIC drivers, DHCP, gVisor's IP stack, the cluster transport
	"cluster",     // the cluster and the distributed VM: membership, node agent, coherence, migration, placement, dvm
	"hyperkernel", // the hypervisor service that runs this node's VMs and its share of distributed ones
	"console",     // the operator's shell and its commands
	".",           // the image's main package
}

// testOnly are folders of host tools and test material: nothing in the
// layers may import them.
var testOnly = []string{"sim", "tools"}

// layerViolations returns one line per import that goes up the layers or
// into test-only material, and per top-level folder the layers do not
// name.
func layerViolations(pkgs map[string]*pkg) []string {
	rank := map[string]int{}
	for i, l := range layers {
		rank[l] = i
	}
	var bad []string
	for _, p := range pkgs {
		from := top(p.rel)
		if slices.Contains(testOnly, from) {
			continue
		}
		r, ok := rank[from]
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: folder %s is in no layer (add it to layers or testOnly)", p.rel, from))
			continue
		}
		for _, imp := range p.all {
			to := top(imp)
			switch tr, ok := rank[to]; {
			case slices.Contains(testOnly, to):
				bad = append(bad, fmt.Sprintf("%s imports %s: test-only material", p.rel, imp))
			case ok && tr > r:
				bad = append(bad, fmt.Sprintf("%s (%s) imports %s (%s, a layer above)", p.rel, from, imp, to))
			}
		}
	}
	slices.Sort(bad)
	return bad
}

func TestLayerOrder(t *testing.T) {
	pkgs := load(t, moduleRoot(t))
	for _, l := range layers {
		found := false
		for _, p := range pkgs {
			found = found || top(p.rel) == l
		}
		if !found {
			t.Errorf("no package in layer %s: the test would see nothing", l)
		}
	}
	for _, v := range layerViolations(pkgs) {
		t.Error(v)
	}
}

func TestLayerOrderFindsViolations(t *testing.T) {
	pkgs := map[string]*pkg{
		"vmm/exits":    {rel: "vmm/exits", all: []string{"cluster/dvm"}},
		"cluster/dvm":  {rel: "cluster/dvm", all: []string{"vmm/vcpu", "sim"}},
		"vmm/vcpu":     {rel: "vmm/vcpu"},
		"sim":          {rel: "sim", all: []string{"console"}},
		"stray/pkg":    {rel: "stray/pkg"},
		"machine/page": {rel: "machine/page"},
	}
	got := layerViolations(pkgs)
	want := []string{
		"cluster/dvm imports sim: test-only material",
		"stray/pkg: folder stray is in no layer (add it to layers or testOnly)",
		"vmm/exits (vmm) imports cluster/dvm (cluster, a layer above)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("violations:\n%q\nwant\n%q", got, want)
	}
}
