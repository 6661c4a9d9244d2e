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

// TestEach: every index runs, and the first error by index comes back.
func TestEach(t *testing.T) {
	var ran [5]bool
	err := Each(5, func(i int) error {
		ran[i] = true
		if i >= 3 {
			return errors.New(string(rune('a' + i)))
		}
		return nil
	})
	if ran != [5]bool{true, true, true, true, true} || err == nil || err.Error() != "d" {
		t.Errorf("ran %v, error %v", ran, err)
	}
	if s, err := ParseSeeds("1, 2,30"); err != nil || len(s) != 3 || s[2] != 30 {
		t.Errorf("ParseSeeds: %v %v", s, err)
	}
	if _, err := ParseSeeds("1,x"); err == nil {
		t.Error("a bad seed parsed")
	}
}
