// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

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
// parser and checks want. Counters of a running guest grow while the
// test looks, so it reads again until want holds or a minute has gone,
// and then reports what the last reading showed.
func checkMetrics(t *testing.T, port int, want []metricWant) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		families, problems, err := readMetrics(port, want)
		if err != nil {
			t.Errorf("the node's metrics: %v", err)
			return
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			t.Logf("the node's metrics: %d families", families)
			for _, p := range problems {
				t.Errorf("after a minute of readings: %s", p)
			}
			return
		}
		time.Sleep(time.Second)
	}
}

// readMetrics reads a node's metrics once and returns the number of
// families and each of want that does not hold.
func readMetrics(port int, want []metricWant) (families int, problems []string, err error) {
	c := http.Client{Timeout: time.Minute}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("not in Prometheus' text format: %w", err)
	}
	for _, w := range want {
		f, ok := fams[w.Name]
		if !ok {
			problems = append(problems, "no family "+w.Name)
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
			problems = append(problems, fmt.Sprintf("%s%v: %v in %d samples, want %v to %v", w.Name, w.Labels, sum, n, w.Min, w.Max))
		}
	}
	return len(fams), problems, nil
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

// operatorKey makes an SSH key pair for the node's command line
// (bigiron.sshkey=) and returns the signer and the command-line word.
func operatorKey(t *testing.T) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, "bigiron.sshkey=" + base64.StdEncoding.EncodeToString(s.PublicKey().Marshal())
}

// checkNodeSSH logs in to the node's shell through the host's port
// (QEMU forwards it to the node's 22) with the operator's key and runs
// nodes; a key the node was not given is refused.
func checkNodeSSH(t *testing.T, n *node, port int, key ssh.Signer) {
	t.Helper()
	cfg := &ssh.ClientConfig{User: "operator", Auth: []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: time.Minute}
	c, err := ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg)
	if err != nil {
		t.Errorf("ssh to the node's shell: %v", err)
		return
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Output("nodes")
	s.Close()
	if err != nil || !strings.Contains(string(out), "members [") {
		t.Errorf("nodes over ssh: %q, %v", out, err)
	}
	other, _ := operatorKey(t)
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(other)}
	if c2, err := ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg); err == nil {
		c2.Close()
		t.Error("a key the node was not given logged in")
	}
	if _, err := n.con.Expect("is not authorized", time.Minute); err != nil {
		t.Errorf("the node's console does not report the refused key: %v", err)
	}
	if !strings.Contains(n.con.Output(), "ssh: operator@") {
		t.Error("the node's console does not report the login")
	}
}
