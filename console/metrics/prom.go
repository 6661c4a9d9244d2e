// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package metrics serves a node's counters to a monitoring system: the
// Prometheus text exposition format (version 0.0.4) at /metrics on the
// node's control-plane address. Like the console, it only reads the
// services' status values and formats them.
package metrics

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Metric types (the exposition format's TYPE line).
const (
	typeCounter   = "counter"
	typeGauge     = "gauge"
	typeHistogram = "histogram"
)

// Writer writes metric families in the text exposition format. Every
// sample of a family must be written before the next family begins (the
// format allows a family's lines in one group only); labels are name,
// value pairs. The first error sticks and is returned by Err.
type Writer struct {
	w      io.Writer
	b      []byte
	family string          // the family being written
	done   map[string]bool // families finished
	err    error
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, done: make(map[string]bool)} }

// Err returns the first error: a write that failed or a misuse.
func (w *Writer) Err() error { return w.err }

// Counter writes one sample of counter family name.
func (w *Writer) Counter(name, help string, v float64, labels ...string) {
	w.sample(name, typeCounter, help, name, v, labels, "", "")
}

// Gauge writes one sample of gauge family name.
func (w *Writer) Gauge(name, help string, v float64, labels ...string) {
	w.sample(name, typeGauge, help, name, v, labels, "", "")
}

// Histogram writes one histogram of family name: counts[i] observations
// at most bounds[i] and above bounds[i-1] (not cumulative), and
// counts[len(bounds)] above the last bound; sum is the observations'
// total.
func (w *Writer) Histogram(name, help string, bounds []float64, counts []uint64, sum float64, labels ...string) {
	if len(counts) != len(bounds)+1 {
		w.fail(fmt.Errorf("metrics: histogram %s: %d counts for %d bounds", name, len(counts), len(bounds)))
		return
	}
	var total uint64
	for i, bound := range bounds {
		total += counts[i]
		w.sample(name, typeHistogram, help, name+"_bucket", float64(total), labels, "le", formatFloat(bound))
	}
	total += counts[len(bounds)]
	w.sample(name, typeHistogram, help, name+"_bucket", float64(total), labels, "le", "+Inf")
	w.sample(name, typeHistogram, help, name+"_sum", sum, labels, "", "")
	w.sample(name, typeHistogram, help, name+"_count", float64(total), labels, "", "")
}

// sample writes one line of family (with its HELP and TYPE lines first
// if it is new): metric{labels,extra="value"} v.
func (w *Writer) sample(family, typ, help, metric string, v float64, labels []string, extra, extraValue string) {
	if w.err != nil {
		return
	}
	if len(labels)%2 != 0 || !validName(family) {
		w.fail(fmt.Errorf("metrics: %s: bad name or odd label list %q", family, labels))
		return
	}
	b := w.b[:0]
	if family != w.family {
		if w.done[family] {
			w.fail(fmt.Errorf("metrics: family %s written in two groups", family))
			return
		}
		if w.family != "" {
			w.done[w.family] = true
		}
		w.family = family
		b = append(b, "# HELP "...)
		b = append(b, family...)
		b = append(b, ' ')
		b = appendEscaped(b, help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, family...)
		b = append(b, ' ')
		b = append(b, typ...)
		b = append(b, '\n')
	}
	b = append(b, metric...)
	if len(labels) > 0 || extra != "" {
		b = append(b, '{')
		for i := 0; i < len(labels); i += 2 {
			if !validName(labels[i]) {
				w.fail(fmt.Errorf("metrics: %s: bad label name %q", family, labels[i]))
				return
			}
			b = appendLabel(b, labels[i], labels[i+1])
		}
		if extra != "" {
			b = appendLabel(b, extra, extraValue)
		}
		b[len(b)-1] = '}'
	}
	b = append(b, ' ')
	b = append(b, formatFloat(v)...)
	b = append(b, '\n')
	w.b = b
	if _, err := w.w.Write(b); err != nil {
		w.fail(err)
	}
}

func (w *Writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// appendLabel appends name="value", with its comma.
func appendLabel(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, '=', '"')
	b = appendEscaped(b, value, true)
	return append(b, '"', ',')
}

// appendEscaped escapes backslashes and line feeds, and in a label value
// double quotes too (the format's rules for HELP text and label values).
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// validName reports whether s is a metric or label name:
// [a-zA-Z_][a-zA-Z0-9_]* (colons are for recording rules).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// formatFloat formats v as the format wants: Go's shortest float, or
// +Inf, -Inf, NaN.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// labelValue makes s fit for a label value read by people: reasons such
// as "EPT violation" keep their spaces; nothing else needs changing (the
// writer escapes), but empty values are written "none".
func labelValue(s string) string {
	if s = strings.TrimSpace(s); s == "" {
		return "none"
	}
	return s
}
