// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricWant is what one family must show: the sum of its samples whose
// labels include Labels within [Min, Max] (Max -1: no bound).
type metricWant struct {
	Name     string
	Labels   map[string]string
	Min, Max float64
}

// checkMetrics fetches a node's metrics through the host's port (QEMU
// forwards it to the node's 9120), reads them with Prometheus' own
// parser and checks want.
func checkMetrics(t *testing.T, port int, want []metricWant) {
	t.Helper()
	c := http.Client{Timeout: time.Minute}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Errorf("the node's metrics: %v", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /metrics: %s", resp.Status)
		return
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Errorf("the node's metrics are not in Prometheus' text format: %v", err)
		return
	}
	t.Logf("the node's metrics: %d families", len(fams))
	for _, w := range want {
		f, ok := fams[w.Name]
		if !ok {
			t.Errorf("the node's metrics lack %s", w.Name)
			continue
		}
		sum, n := 0.0, 0
		for _, m := range f.Metric {
			if hasLabels(m, w.Labels) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
				n++
			}
		}
		if n == 0 || sum < w.Min || w.Max >= 0 && sum > w.Max {
			t.Errorf("%s%v: %v in %d samples, want %v to %v", w.Name, w.Labels, sum, n, w.Min, w.Max)
		}
	}
}

// hasLabels reports whether m carries every label of want.
func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			found++
		}
	}
	return found == len(want)
}
