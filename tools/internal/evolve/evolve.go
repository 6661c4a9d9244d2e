// Package evolve is the seeded (1+1) evolution strategy that fits the
// learned policies' models in the simulator (tools/policytrain,
// tools/balancetrain): a candidate is the current parameters plus
// Gaussian noise of scale sigma, kept if its loss is lower; sigma grows
// by 1.5 on a success and shrinks by 1.5^(1/4) on a failure (the
// one-fifth success rule), within bounds. A fit is exactly reproducible
// from its seed.
package evolve

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
)

// Config describes a search.
type Config struct {
	// Seed and Stream seed the noise.
	Seed, Stream uint64
	// Steps is how many candidates are tried.
	Steps int
	// Sigma is the first noise scale, MinSigma and MaxSigma its bounds.
	Sigma, MinSigma, MaxSigma float64
	// Loss returns the loss of parameters p (lower is better).
	Loss func(p []float64) (float64, error)
	// Log, if set, gets the start's loss and a line for every
	// improvement: its step, loss, the loss's exponential (a
	// geometric-mean slowdown for a mean of logs) and the new sigma.
	Log io.Writer
}

// Fit searches from start and returns the parameters of least loss it
// found and that loss.
func Fit(cfg Config, start []float64) ([]float64, float64, error) {
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Stream))
	cur := append([]float64(nil), start...)
	curLoss, err := cfg.Loss(cur)
	if err != nil {
		return nil, 0, err
	}
	if cfg.Log != nil {
		fmt.Fprintf(cfg.Log, "start: loss %.4f (geomean %.2fx)\n", curLoss, math.Exp(curLoss))
	}
	sigma := cfg.Sigma
	for step := 0; step < cfg.Steps; step++ {
		cand := make([]float64, len(cur))
		for i := range cur {
			cand[i] = cur[i] + sigma*rng.NormFloat64()
		}
		l, err := cfg.Loss(cand)
		if err != nil {
			return nil, 0, err
		}
		if l < curLoss {
			cur, curLoss = cand, l
			sigma *= 1.5
			if cfg.Log != nil {
				fmt.Fprintf(cfg.Log, "step %d: loss %.4f (geomean %.2fx), sigma %.2f\n", step, l, math.Exp(l), sigma)
			}
		} else {
			sigma *= math.Pow(1.5, -0.25)
		}
		sigma = min(max(sigma, cfg.MinSigma), cfg.MaxSigma)
	}
	return cur, curLoss, nil
}

// Each runs f(i) for every i in [0, n), two at a time (the machines
// this project's fits run on have two cores), and returns the first
// error by index.
func Each(n int, f func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ParseSeeds parses a comma-separated list of seeds.
func ParseSeeds(s string) ([]uint64, error) {
	var out []uint64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("seed %q: %w", f, err)
		}
		out = append(out, n)
	}
	return out, nil
}
