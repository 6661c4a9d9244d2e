package evolve

import (
	"errors"
	"io"
	"testing"
)

// TestFitFindsTheMinimum: on a quadratic bowl the search ends near its
// bottom, never above where it started, the same from the same seed.
func TestFitFindsTheMinimum(t *testing.T) {
	bowl := func(p []float64) (float64, error) { return (p[0]-3)*(p[0]-3) + (p[1]+1)*(p[1]+1), nil }
	cfg := Config{Seed: 1, Stream: 2, Steps: 300, Sigma: 1, MinSigma: 0.001, MaxSigma: 4, Loss: bowl, Log: io.Discard}
	p, l, err := Fit(cfg, []float64{0, 0})
	if err != nil || l > 0.01 {
		t.Fatalf("ended at %v, loss %v, %v", p, l, err)
	}
	q, l2, _ := Fit(cfg, []float64{0, 0})
	if q[0] != p[0] || q[1] != p[1] || l2 != l {
		t.Errorf("two fits from one seed differ: %v and %v", p, q)
	}
	cfg.Steps = 0
	if p, l, _ := Fit(cfg, []float64{0, 0}); p[0] != 0 || p[1] != 0 || l != 10 {
		t.Errorf("no steps: %v, loss %v", p, l)
	}
	cfg.Loss = func([]float64) (float64, error) { return 0, errors.New("no") }
	if _, _, err := Fit(cfg, []float64{0}); err == nil {
		t.Error("the loss's error was lost")
	}
}
