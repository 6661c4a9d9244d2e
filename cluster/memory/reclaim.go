package memory

import (
	"errors"
	"fmt"
)

// ErrNoFrames reports a fault that needs a frame for a copy when the
// FrameSource has none and this node holds no copy it could evict: the
// node's memory is full of pages it homes.
var ErrNoFrames = errors.New("memory: no frame for a page copy and no copy to evict")

// CopyFrames returns the number of frames this node holds for copies of
// pages homed elsewhere (see Config.CopyFrames): never more than the
// bound, when there is one.
func (e *Engine) CopyFrames() int { return e.copyFrames }

// Copies returns the number of copies of pages homed elsewhere this node
// holds.
func (e *Engine) Copies() int { return e.copies }

// reserve promises a frame to the request a fault on a page homed
// elsewhere is about to send, so that its answer always finds one: a
// pool frame not yet promised, else a new frame while under
// Config.CopyFrames and while Frames has one, else the frame of a victim
// copy, evicted now (written back if Modified). The victim's frame is in
// deferred until the outbox is consumed, which happens before the answer
// can arrive. reserve reports false if every copy held has a request
// outstanding (the caller retries when one completes), and an error if
// nothing this node holds or awaits could ever free a frame.
func (e *Engine) reserve(out *Outbox) (bool, error) {
	if len(e.free)+len(e.deferred) > e.waiting {
		e.waiting++
		return true, nil
	}
	var allocErr error
	if e.cfg.CopyFrames <= 0 || e.copyFrames < e.cfg.CopyFrames {
		f, err := e.newFrame()
		if err == nil {
			e.free = append(e.free, f)
			e.copyFrames++
			e.waiting++
			return true, nil
		}
		allocErr = err
	}
	v, ok := e.victim()
	if !ok {
		if e.copies == 0 && e.waiting == 0 {
			if allocErr != nil {
				return false, fmt.Errorf("%w: %w", ErrNoFrames, allocErr)
			}
			return false, ErrNoFrames
		}
		return false, nil
	}
	e.stats.Reclaims++
	e.evict(v, out)
	e.waiting++
	return true, nil
}

// newFrame takes a frame for a copy from Frames, or the Go heap.
func (e *Engine) newFrame() (*Page, error) {
	if e.cfg.Frames == nil {
		return new(Page), nil
	}
	return e.cfg.Frames.AllocPage()
}

// victim chooses the copy to evict by the clock (second chance): from
// the hand on, in fill order, the first copy without a request
// outstanding and not referenced since the hand last passed; the hand
// clears the reference bits it passes and stops after the victim. It
// reports false if every copy has a request outstanding.
func (e *Engine) victim() (uint64, bool) {
	for range 2*e.copies + 1 {
		if e.hand == 0 {
			return 0, false
		}
		p := uint64(e.hand - 1)
		ps := &e.pages[p]
		e.hand = ps.next
		switch {
		case ps.pending != 0, ps.window != winNone:
		case ps.ref:
			ps.ref = false
		default:
			return p, true
		}
	}
	return 0, false
}

// link puts the copy of page p, just filled, into the clock behind the
// hand: the last the hand reaches.
func (e *Engine) link(p uint64) {
	ps := &e.pages[p]
	i := int32(p) + 1
	ps.ref = false
	e.copies++
	if e.hand == 0 {
		ps.prev, ps.next, e.hand = i, i, i
		return
	}
	h := &e.pages[e.hand-1]
	ps.prev, ps.next = h.prev, e.hand
	e.pages[h.prev-1].next = i
	h.prev = i
}

// unlink takes the copy of page p, just dropped, out of the clock.
func (e *Engine) unlink(p uint64) {
	ps := &e.pages[p]
	i := int32(p) + 1
	if ps.next == 0 {
		return // not linked
	}
	e.copies--
	if ps.next == i {
		e.hand = 0
	} else {
		e.pages[ps.prev-1].next = ps.next
		e.pages[ps.next-1].prev = ps.prev
		if e.hand == i {
			e.hand = ps.next
		}
	}
	ps.prev, ps.next, ps.ref = 0, 0, false
}
