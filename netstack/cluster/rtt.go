package cluster

import "time"

// rttEstimator computes the retransmission timeout from round-trip samples
// as in RFC 6298, 2 (Jacobson/Karels), with exponential backoff (5.5).
type rttEstimator struct {
	srtt, rttvar time.Duration
	rto          time.Duration
	min, max     time.Duration
	sampled      bool
	backoff      int
}

func newRTTEstimator(initial, lo, hi time.Duration) rttEstimator {
	return rttEstimator{rto: initial, min: lo, max: hi}
}

// sample folds one round-trip measurement into the estimate and clears any
// backoff (RFC 6298, 2.2 and 2.3, alpha=1/8, beta=1/4, K=4).
func (e *rttEstimator) sample(r time.Duration) {
	if r < 0 {
		return
	}
	if !e.sampled {
		e.srtt = r
		e.rttvar = r / 2
		e.sampled = true
	} else {
		d := e.srtt - r
		if d < 0 {
			d = -d
		}
		e.rttvar = (3*e.rttvar + d) / 4
		e.srtt = (7*e.srtt + r) / 8
	}
	e.backoff = 0
	e.rto = e.clamp(e.srtt + 4*e.rttvar)
}

// timeout doubles the timeout after a retransmission timer expiry (RFC 6298, 5.5).
func (e *rttEstimator) timeout() {
	e.backoff++
	e.rto = e.clamp(2 * e.rto)
}

func (e *rttEstimator) clamp(d time.Duration) time.Duration {
	return min(max(d, e.min), e.max)
}
