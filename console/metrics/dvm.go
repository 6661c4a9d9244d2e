// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package metrics

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/big-iron/big-iron/cluster/memory"
	"github.com/big-iron/big-iron/hyperkernel/hv"
)

// DistView is this node's view of the distributed VM as /dvm serves it
// (JSON), for tools that draw where pages and vCPUs are over time.
type DistView struct {
	// VM is the VM's id (hex); Self this node's cluster id; Index its
	// index among the VM's Nodes.
	VM           string `json:"vm"`
	Self         int    `json:"self"`
	Index        int    `json:"index"`
	Nodes        int    `json:"nodes"`
	ElapsedNS    int64  `json:"elapsed_ns"`
	Pages        int    `json:"pages"`
	PagesPerCell int    `json:"pages_per_cell"`
	// PageMap has a character per cell of PagesPerCell pages: M where
	// this node holds one of them Modified, s Shared, . none.
	PageMap string `json:"page_map"`
	// VCPUs says where each vCPU runs, as this node knows it (Node is an
	// index among the VM's nodes).
	VCPUs []VCPUView `json:"vcpus"`
	// Hot are the pages whose faults here waited most often.
	Hot []HotView `json:"hot"`
}

// VCPUView is one vCPU in a DistView.
type VCPUView struct {
	ID   int  `json:"id"`
	Node int  `json:"node"`
	Here bool `json:"here"`
}

// HotView is one hot page in a DistView.
type HotView struct {
	GPA   uint64 `json:"gpa"`
	Waits uint32 `json:"waits"`
}

// NewDistView makes the view of st.
func NewDistView(st *hv.DistStatus) DistView {
	v := DistView{VM: strconv.FormatUint(uint64(st.Spec.ID), 16), Self: st.Self, Index: st.Index, Nodes: st.Spec.Nodes,
		ElapsedNS: int64(st.Elapsed), Pages: st.Spec.Pages, PagesPerCell: st.PagesPerCell,
		VCPUs: []VCPUView{}, Hot: []HotView{}}
	m := make([]byte, len(st.PageMap))
	for i, c := range st.PageMap {
		m[i] = ".sM"[min(int(c), int(memory.Modified))]
	}
	v.PageMap = string(m)
	for _, c := range st.VCPUs {
		v.VCPUs = append(v.VCPUs, VCPUView{ID: c.ID, Node: c.Node, Here: c.Here})
	}
	for _, h := range st.HotPages {
		v.Hot = append(v.Hot, HotView{GPA: h.GPA, Waits: h.Waits})
	}
	return v
}

// serveDist answers GET /dvm: this node's view of the distributed VM, or
// 404 when there is none.
func (s Sources) serveDist(w http.ResponseWriter, _ *http.Request) {
	if s.Dist == nil {
		http.Error(w, "this node runs no distributed VMs", http.StatusNotFound)
		return
	}
	st, err := s.Dist.Status()
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(NewDistView(&st))
}
