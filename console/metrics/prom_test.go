// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package metrics

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parse reads text with Prometheus' own parser of the format.
func parse(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus' parser refuses the output: %v\n%s", err, text)
	}
	return fams
}

// label is the value of a sample's label name.
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func TestWriterFormat(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Counter("x_total", "Things\\counted,\nall of them.", 3, "reason", `EPT "violation"\n`, "vm", "1")
	w.Counter("x_total", "Things\\counted,\nall of them.", 4, "reason", "other", "vm", "1")
	w.Gauge("y", "A gauge.", 0.25)
	w.Gauge("z", "Not a number.", math.Inf(1))
	w.Histogram("wait_seconds", "Waits.", []float64{0.001, 0.01}, []uint64{5, 0, 2}, 1.5, "dvm", "a1")
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	fams := parse(t, b.String())
	x := fams["x_total"]
	if x.GetType() != dto.MetricType_COUNTER || x.GetHelp() != "Things\\counted,\nall of them." || len(x.Metric) != 2 {
		t.Fatalf("x_total: %v", x)
	}
	if got := label(x.Metric[0], "reason"); got != `EPT "violation"\n` || x.Metric[0].GetCounter().GetValue() != 3 {
		t.Errorf("the escaped label came back as %q, value %v", got, x.Metric[0].GetCounter().GetValue())
	}
	if g := fams["y"]; g.GetType() != dto.MetricType_GAUGE || g.Metric[0].GetGauge().GetValue() != 0.25 || len(g.Metric[0].GetLabel()) != 0 {
		t.Errorf("y: %v", g)
	}
	if z := fams["z"].Metric[0].GetGauge().GetValue(); !math.IsInf(z, 1) {
		t.Errorf("z: %v, want +Inf", z)
	}
	h := fams["wait_seconds"].Metric[0].GetHistogram()
	if h.GetSampleCount() != 7 || h.GetSampleSum() != 1.5 || label(fams["wait_seconds"].Metric[0], "dvm") != "a1" {
		t.Errorf("histogram: %v", h)
	}
	for i, want := range []uint64{5, 5} { // cumulative; +Inf is the count
		if got := h.Bucket[i].GetCumulativeCount(); got != want {
			t.Errorf("bucket le=%v: %d, want %d", h.Bucket[i].GetUpperBound(), got, want)
		}
	}
}

func TestWriterMisuse(t *testing.T) {
	for name, write := range map[string]func(w *Writer){
		"family in two groups": func(w *Writer) { w.Gauge("a", "", 1); w.Gauge("b", "", 1); w.Gauge("a", "", 2) },
		"bad metric name":      func(w *Writer) { w.Gauge("9lives", "", 1) },
		"bad label name":       func(w *Writer) { w.Gauge("a", "", 1, "the vm", "1") },
		"odd labels":           func(w *Writer) { w.Gauge("a", "", 1, "vm") },
		"histogram counts":     func(w *Writer) { w.Histogram("h", "", []float64{1}, []uint64{1}, 0) },
	} {
		var b bytes.Buffer
		w := NewWriter(&b)
		write(w)
		if w.Err() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write(p []byte) (int, error) { return 0, errors.New("connection reset") }

func TestWriterKeepsFirstError(t *testing.T) {
	w := NewWriter(failingWriter{})
	w.Gauge("a", "", 1)
	w.Gauge("b", "", 1)
	if err := w.Err(); err == nil || err.Error() != "connection reset" {
		t.Errorf("Err() = %v, want the write's error", err)
	}
}
