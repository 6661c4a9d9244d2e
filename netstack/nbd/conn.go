// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nbd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"
)

// bufSize is the size of a connection's read and write buffers: many
// small requests go out in one write, many small replies come in one read;
// larger data bypasses them.
const bufSize = 64 << 10

// discWait bounds the wait, after NBD_CMD_DISC, for the server to close
// the connection.
const discWait = time.Second

// Internal reasons for a connection's end.
var (
	// errClosing: Close drained the connection and sent NBD_CMD_DISC.
	errClosing = errors.New("nbd: client closing")
	// errServerShutdown: the server answered NBD_ESHUTDOWN; the request is
	// sent again on the next connection.
	errServerShutdown = errors.New("nbd: the server is shutting down (NBD_ESHUTDOWN)")
)

// conn is one connection in the transmission phase.
type conn struct {
	nc   net.Conn
	info Info
	bw   *bufio.Writer // run's
	br   *bufio.Reader // the reader's
	hdr  [requestLen]byte
	rhdr [replyLen]byte
	done chan struct{} // closed when the reader has exited
	err  error         // why the reader exited; read after done
	// broken is set by the reader before it closes the connection: run's
	// write error is then only a consequence of err.
	broken atomic.Bool
}

// dialResult is the outcome of one dial and handshake.
type dialResult struct {
	cn  *conn
	err error
}

// connect dials the server and performs the handshake, both bounded by
// Timeout and by ctx.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	nc, err := c.cfg.Dial(ctx, c.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("nbd: dialing %s: %w", c.cfg.Addr, err)
	}
	if nc == nil {
		return nil, fmt.Errorf("nbd: dialing %s: Dial returned no connection", c.cfg.Addr)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	info, err := handshake(nc, c.cfg.Export)
	if !stop() && err == nil {
		err = fmt.Errorf("nbd: handshake with %s: %w", c.cfg.Addr, context.Cause(ctx))
	}
	if err == nil {
		err = nc.SetDeadline(time.Time{})
	}
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	return &conn{
		nc:   nc,
		info: info,
		bw:   bufio.NewWriterSize(nc, bufSize),
		br:   bufio.NewReaderSize(nc, bufSize),
		done: make(chan struct{}),
	}, nil
}

// connected makes cn the client's connection. c.mu is held.
func (c *Client) connected(cn *conn) {
	if c.haveInfo {
		c.stats.reconnects++
	}
	c.conn = cn
	c.info, c.haveInfo = cn.info, true
	c.state = StateConnected
	c.lastProgress = time.Now()
	if c.pending.n == 0 {
		c.downSince = time.Time{} // else once a reply comes
	}
}

// nextBackoff is the pause after one more failed dial.
func (c *Client) nextBackoff(b time.Duration) time.Duration {
	if b == 0 {
		return c.cfg.MinBackoff
	}
	return min(2*b, c.cfg.MaxBackoff)
}

// run is the client's goroutine: it keeps a connection up, sends the
// requests and handles broken connections until the client is closed.
func (c *Client) run(cn *conn) {
	defer close(c.stopped)
	for {
		if cn == nil {
			if cn = c.reconnect(); cn == nil {
				break
			}
		}
		err := c.serve(cn)
		if c.disconnect(cn, err) {
			break
		}
		cn = nil
	}
	c.shutdown()
}

// reconnect dials until a handshake succeeds, with backoff; meanwhile it
// completes rejected requests and fails those that waited past the
// timeout. It returns nil when the client is closing.
func (c *Client) reconnect() *conn {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	backoff := time.Duration(0)
	for {
		res := make(chan dialResult, 1)
		go func(pause time.Duration) {
			if pause > 0 {
				t := time.NewTimer(pause + rand.N(pause/4+1))
				select {
				case <-ctx.Done():
					t.Stop()
					res <- dialResult{err: ctx.Err()}
					return
				case <-t.C:
				}
			}
			cn, err := c.connect(ctx)
			res <- dialResult{cn, err}
		}(backoff)
		r, ok := c.awaitDial(res, cancel)
		if !ok {
			return nil
		}
		c.mu.Lock()
		if r.err == nil {
			c.connected(r.cn)
			c.mu.Unlock()
			return r.cn
		}
		c.lastErr = r.err
		c.mu.Unlock()
		backoff = c.nextBackoff(backoff)
	}
}

// awaitDial waits for the dial in progress, doing the client's
// housekeeping meanwhile. When the client is closing it cancels the dial,
// closes whatever connection it made and returns false.
func (c *Client) awaitDial(res <-chan dialResult, cancel context.CancelFunc) (dialResult, bool) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.completeRejected()
		closing, next := c.expire()
		if closing {
			cancel()
			if r := <-res; r.cn != nil {
				_ = r.cn.nc.Close()
			}
			return dialResult{}, false
		}
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case r := <-res:
			return r, true
		case <-c.wake:
		case <-timer.C:
		}
	}
}

// expire fails the queued requests once the client has had no working
// connection for Timeout, and marks it failed. It returns whether the
// client is closing and, if not, when the queue expires (zero once it
// has).
func (c *Client) expire() (closing bool, next time.Time) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return true, time.Time{}
	}
	if c.downSince.IsZero() {
		c.downSince = time.Now()
	}
	deadline := c.downSince.Add(c.cfg.Timeout)
	if time.Now().Before(deadline) {
		c.mu.Unlock()
		return false, deadline
	}
	c.state = StateFailed
	list := c.pending.take()
	lastErr := c.lastErr
	c.mu.Unlock()
	for r := list; r != nil; {
		next := r.next
		c.complete(r, fmt.Errorf("nbd: %v of %d bytes at %d: no working connection to %s for %v: %w (last error: %v)",
			r.Op, r.length(), r.Offset, c.cfg.Addr, c.cfg.Timeout, ErrTimeout, lastErr))
		r = next
	}
	return false, time.Time{}
}

// serve sends the requests on cn until it breaks, Close has drained it,
// or the server answers nothing for Timeout. It returns why it stopped.
func (c *Client) serve(cn *conn) error {
	go c.readLoop(cn)
	tick := time.NewTicker(max(c.cfg.Timeout/4, time.Millisecond))
	defer tick.Stop()
	for {
		c.completeRejected()
		if err := c.sendPending(cn); err != nil {
			if cn.broken.Load() {
				<-cn.done
				return cn.err // the cause, not the write's failure
			}
			return err
		}
		if c.drained() {
			return c.sendDisc(cn)
		}
		select {
		case <-c.wake:
		case <-cn.done:
			if errors.Is(cn.err, errServerShutdown) {
				_ = c.sendDisc(cn)
			}
			return cn.err
		case <-tick.C:
			if err := c.stalled(); err != nil {
				return err
			}
		}
	}
}

// drained says whether Close was called and every request is complete.
func (c *Client) drained() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing && c.pending.n == 0 && c.rejected.n == 0 && len(c.free) == len(c.slots)
}

// stalled returns an error when requests are in flight and the server has
// answered nothing for Timeout.
func (c *Client) stalled() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.slots) - len(c.free)
	if n == 0 || time.Since(c.lastProgress) < c.cfg.Timeout {
		return nil
	}
	return fmt.Errorf("nbd: no reply from %s for %v with %d requests in flight", c.cfg.Addr, c.cfg.Timeout, n)
}

// sendDisc sends NBD_CMD_DISC (proto.md, "Terminating the transmission
// phase") and waits a little for the server to close the connection. It
// returns errClosing, or why the request could not be sent.
func (c *Client) sendDisc(cn *conn) error {
	putRequest(cn.hdr[:], 0, opDisc, 0, 0, 0)
	if _, err := cn.bw.Write(cn.hdr[:]); err != nil {
		return fmt.Errorf("nbd: sending NBD_CMD_DISC: %w", err)
	}
	if err := cn.bw.Flush(); err != nil {
		return fmt.Errorf("nbd: sending NBD_CMD_DISC: %w", err)
	}
	t := time.NewTimer(min(discWait, c.cfg.Timeout))
	defer t.Stop()
	select {
	case <-cn.done:
	case <-t.C:
	}
	return errClosing
}

// sendPending sends queued requests while slots are free, then flushes.
func (c *Client) sendPending(cn *conn) error {
	for {
		c.mu.Lock()
		if c.pending.head == nil || len(c.free) == 0 {
			c.mu.Unlock()
			if err := cn.bw.Flush(); err != nil {
				return fmt.Errorf("nbd: sending requests: %w", err)
			}
			return nil
		}
		r := c.pending.pop()
		if err := check(r, &cn.info); err != nil {
			c.mu.Unlock()
			c.complete(r, err)
			continue
		}
		if len(c.free) == len(c.slots) {
			c.lastProgress = time.Now() // the server's clock starts now
		}
		i := c.free[len(c.free)-1]
		c.free = c.free[:len(c.free)-1]
		s := &c.slots[i]
		s.req, s.state, s.errno = r, slotSending, 0
		s.seq++
		cookie := uint64(s.seq)<<32 | uint64(i)
		c.mu.Unlock()

		err := cn.send(r, cookie)

		c.mu.Lock()
		answered := s.state == slotAnswered
		if s.state == slotSending {
			s.state = slotSent
		}
		c.mu.Unlock()
		if answered {
			c.finish(i, s.errno)
		}
		if err != nil {
			return err
		}
	}
}

// send writes r's header, and its data for a write, into the buffer.
func (cn *conn) send(r *Request, cookie uint64) error {
	var fl cmdFlags
	if r.FUA {
		fl |= cmdFlagFUA
	}
	putRequest(cn.hdr[:], fl, r.Op, cookie, r.Offset, uint32(r.length()))
	if _, err := cn.bw.Write(cn.hdr[:]); err != nil {
		return fmt.Errorf("nbd: sending a request: %w", err)
	}
	if r.Op == OpWrite {
		if _, err := cn.bw.Write(r.Data); err != nil {
			return fmt.Errorf("nbd: sending %d bytes of a write: %w", len(r.Data), err)
		}
	}
	return nil
}

// readLoop reads replies on cn until it breaks; it then closes cn (which
// stops run's writes) and records why. After NBD_ESHUTDOWN it leaves cn
// open for run's NBD_CMD_DISC.
func (c *Client) readLoop(cn *conn) {
	var err error
	for err == nil {
		err = c.readReply(cn)
	}
	cn.err = err
	if !errors.Is(err, errServerShutdown) {
		cn.broken.Store(true)
		_ = cn.nc.Close()
	}
	close(cn.done)
}

// readReply reads one simple reply (proto.md, "Simple reply message") and
// completes its request. An error means the connection is unusable: the
// server closed it, or sent what a simple reply cannot be.
func (c *Client) readReply(cn *conn) error {
	if _, err := io.ReadFull(cn.br, cn.rhdr[:]); err != nil {
		return fmt.Errorf("nbd: reading a reply: %w", closedErr(err))
	}
	rp := parseReply(cn.rhdr[:])
	switch rp.magic {
	case magicReply:
	case magicStructured:
		return protoErr("structured reply, never negotiated")
	default:
		return protoErr("reply magic %#08x", rp.magic)
	}
	now := time.Now()
	c.mu.Lock()
	i, seq := rp.cookie&0xffffffff, uint32(rp.cookie>>32)
	if i >= uint64(len(c.slots)) || c.slots[i].seq != seq || c.slots[i].state == slotFree || c.slots[i].state == slotAnswered {
		c.mu.Unlock()
		return protoErr("reply with unknown cookie %#x", rp.cookie)
	}
	s := &c.slots[i]
	r := s.req
	c.lastProgress = now
	if rp.errno != ESHUTDOWN { // a server answering only that does not work
		c.downSince = time.Time{}
	}
	if s.state == slotSending {
		// Only a write's reply can come before all of it is written.
		if r.Op == OpRead && rp.errno == 0 {
			c.mu.Unlock()
			return protoErr("data for a read (cookie %#x) before the request was sent", rp.cookie)
		}
		if rp.errno == ESHUTDOWN {
			c.mu.Unlock()
			return errServerShutdown
		}
		s.state, s.errno = slotAnswered, rp.errno
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	if r.Op == OpRead && rp.errno == 0 {
		if _, err := io.ReadFull(cn.br, r.Data); err != nil {
			return fmt.Errorf("nbd: reading %d bytes of a read reply: %w", len(r.Data), closedErr(err))
		}
	}
	if rp.errno == ESHUTDOWN {
		return errServerShutdown // the request stays, and is sent again
	}
	c.finish(uint32(i), rp.errno)
	return nil
}

// finish frees slot i and completes its request with the server's answer.
func (c *Client) finish(i uint32, errno Errno) {
	var err error
	if errno != 0 {
		r := c.slots[i].req // the slot is not freed before this returns
		err = fmt.Errorf("nbd: %v of %d bytes at %d: %w", r.Op, r.length(), r.Offset, errno)
	}
	now := time.Now()
	c.mu.Lock()
	s := &c.slots[i]
	r := s.req
	s.req, s.state = nil, slotFree
	c.free = append(c.free, i)
	c.account(r, err, now)
	r.busy = false
	kick := c.pending.n > 0 || c.closing
	c.mu.Unlock()
	if kick {
		c.kick()
	}
	r.Err = err
	r.Done(r)
}

// complete completes r, which is in no slot, with err.
func (c *Client) complete(r *Request, err error) {
	now := time.Now()
	c.mu.Lock()
	c.account(r, err, now)
	r.busy = false
	c.mu.Unlock()
	r.Err = err
	r.Done(r)
}

// completeRejected completes the requests Submit rejected.
func (c *Client) completeRejected() {
	c.mu.Lock()
	list := c.rejected.take()
	c.mu.Unlock()
	for r := list; r != nil; {
		next := r.next
		c.complete(r, r.Err)
		r = next
	}
}

// disconnect closes cn, waits for its reader and puts the requests it
// left unanswered back at the head of the queue. It returns whether the
// client is closing.
func (c *Client) disconnect(cn *conn, why error) bool {
	_ = cn.nc.Close()
	<-cn.done
	now := time.Now()
	c.mu.Lock()
	var answered []uint32
	for i := len(c.slots) - 1; i >= 0; i-- {
		s := &c.slots[i]
		switch s.state {
		case slotFree:
			continue
		case slotAnswered:
			answered = append(answered, uint32(i))
			continue
		}
		c.pending.pushFront(s.req)
		s.req, s.state = nil, slotFree
		c.free = append(c.free, uint32(i))
	}
	c.conn = nil
	if c.downSince.IsZero() {
		c.downSince = now
	}
	closing := c.closing
	if errors.Is(why, errClosing) {
		why = nil
	}
	if why != nil {
		c.lastErr = why
		c.stats.disconnects++
	}
	if closing {
		c.closeErr = why
	} else {
		c.state = StateReconnecting
	}
	c.mu.Unlock()
	for _, i := range answered {
		c.finish(i, c.slots[i].errno)
	}
	return closing
}

// shutdown fails whatever is left with ErrClosed and marks the client
// closed: Submit then completes requests itself.
func (c *Client) shutdown() {
	c.mu.Lock()
	c.state = StateClosed
	list := c.pending.take()
	rejected := c.rejected.take()
	c.mu.Unlock()
	for r := rejected; r != nil; {
		next := r.next
		c.complete(r, r.Err)
		r = next
	}
	for r := list; r != nil; {
		next := r.next
		c.complete(r, fmt.Errorf("nbd: %v of %d bytes at %d: %w", r.Op, r.length(), r.Offset, ErrClosed))
		r = next
	}
}
