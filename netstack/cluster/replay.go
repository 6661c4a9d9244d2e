package cluster

// replayWords is the size of the replay bitmap in 64-bit words.
const replayWords = 2

// ReplayWindowSize is the number of counters behind the highest one seen for
// which the replay window still remembers what arrived.
const ReplayWindowSize = 64 * replayWords

// ReplayWindow is a sliding anti-replay window over a sender's 64-bit frame
// counters, in the manner of RFC 4303, 3.4.3 and Appendix A2: counters above
// the highest seen are new; counters within ReplayWindowSize below it are
// accepted once; older ones are rejected. The zero value accepts counters
// from 1 on.
type ReplayWindow struct {
	top  uint64
	bits [replayWords]uint64 // bit i of the window = counter top-i
}

// Check reports whether counter would be accepted. It does not record it:
// call Accept only after the frame has been authenticated (RFC 4303, 3.4.3).
func (w *ReplayWindow) Check(counter uint64) bool {
	if counter == 0 {
		return false
	}
	if counter > w.top {
		return true
	}
	d := w.top - counter
	if d >= ReplayWindowSize {
		return false
	}
	return w.bits[d/64]&(1<<(d%64)) == 0
}

// Accept records counter as seen. It reports false, changing nothing, if
// Check would have rejected it.
func (w *ReplayWindow) Accept(counter uint64) bool {
	if !w.Check(counter) {
		return false
	}
	if counter > w.top {
		w.shift(counter - w.top)
		w.top = counter
	}
	d := w.top - counter
	w.bits[d/64] |= 1 << (d % 64)
	return true
}

// shift moves the window up by n counters.
func (w *ReplayWindow) shift(n uint64) {
	if n >= ReplayWindowSize {
		w.bits = [replayWords]uint64{}
		return
	}
	words, bitsN := int(n/64), n%64
	for i := replayWords - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = w.bits[j] << bitsN
			if bitsN != 0 && j-1 >= 0 {
				v |= w.bits[j-1] >> (64 - bitsN)
			}
		}
		w.bits[i] = v
	}
}

// Restart makes the window treat every counter up to top as seen: a peer
// forgotten and added again resumes above what it sent before.
func (w *ReplayWindow) Restart(top uint64) {
	w.top = top
	for i := range w.bits {
		w.bits[i] = ^uint64(0)
	}
}

// Top returns the highest counter accepted so far.
func (w *ReplayWindow) Top() uint64 { return w.top }
