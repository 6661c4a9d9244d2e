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
	"sync"
	"time"
)

// bufSize is the size of a connection's read and write buffers: many
// small requests go out in one write, many small replies come in one read;
// larger data bypasses them.
const bufSize = 64 << 10

// discWait bounds the wait, after NBD_CMD_DISC, for the server to close
// the connection.
const discWait = time.Second

// readPiece is the most data of a read reply taken between two notes of
// progress (see Client.watch).
const readPiece = 256 << 10

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

	mu    sync.Mutex
	cause error // why the connection ends: the first reason given
}

// fail records err as why cn ends, unless a reason came first (the other
// failures are its consequences), and closes cn, which stops the reader
// and run's writes.
func (cn *conn) fail(err error) {
	cn.setCause(err)
	_ = cn.nc.Close()
}

// setCause records err as why cn ends unless a reason came first.
func (cn *conn) setCause(err error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.cause == nil {
		cn.cause = err
	}
}

// why is the reason cn ends.
func (cn *conn) why() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.cause
}

// dialResult is the outcome of one dial and handshake.
type dialResult struct {
	cn  *conn
	err error
}

// connect dials the server and performs the handshake, both bounded by
// DialTimeout and by ctx.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
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
	c.touch()
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
		c.serve(cn)
		if c.disconnect(cn) {
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
// or the server answers nothing for Timeout; the reason is cn's cause.
func (c *Client) serve(cn *conn) {
	go c.readLoop(cn)
	stop, watching := make(chan struct{}), make(chan struct{})
	go c.watch(cn, stop, watching)
	defer func() {
		close(stop)
		<-watching
	}()
	for {
		c.completeRejected()
		if err := c.sendPending(cn); err != nil {
			cn.fail(err)
			return
		}
		if c.drained() {
			c.sendDisc(cn)
			return
		}
		select {
		case <-c.wake:
		case <-cn.done:
			if errors.Is(cn.why(), errServerShutdown) {
				c.sendDisc(cn)
			}
			return
		}
	}
}

// watch breaks cn when requests are in flight and the server has neither
// answered nor taken a request for Timeout (a lost server, or one that no
// longer reads), until stop is closed; it closes watching on return.
func (c *Client) watch(cn *conn, stop <-chan struct{}, watching chan<- struct{}) {
	defer close(watching)
	tick := time.NewTicker(max(c.cfg.Timeout/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		n := len(c.slots) - len(c.free)
		c.mu.Unlock()
		idle := time.Duration(time.Since(c.epoch).Nanoseconds() - c.progress.Load())
		if n > 0 && idle >= c.cfg.Timeout {
			cn.fail(fmt.Errorf("nbd: no progress with %s for %v with %d requests in flight", c.cfg.Addr, idle.Round(time.Millisecond), n))
			return
		}
	}
}

// touch notes that the server answered or took a request.
func (c *Client) touch() {
	c.progress.Store(time.Since(c.epoch).Nanoseconds())
}

// drained says whether Close was called and every request is complete.
func (c *Client) drained() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing && c.pending.n == 0 && c.rejected.n == 0 && len(c.free) == len(c.slots)
}

// sendDisc sends NBD_CMD_DISC (proto.md, "Terminating the transmission
// phase"), waits a little for the server to close the connection, and
// closes it. When it is Close's, a failure to send is Close's error.
func (c *Client) sendDisc(cn *conn) {
	cn.setCause(errClosing) // the server's closing is no failure
	putRequest(cn.hdr[:], 0, opDisc, 0, 0, 0)
	_, err := cn.bw.Write(cn.hdr[:])
	if err == nil {
		err = cn.bw.Flush()
	}
	if err != nil {
		c.mu.Lock()
		if c.closing {
			c.closeErr = fmt.Errorf("nbd: sending NBD_CMD_DISC: %w", err)
		}
		c.mu.Unlock()
		cn.fail(errClosing)
		return
	}
	t := time.NewTimer(min(discWait, c.cfg.Timeout))
	defer t.Stop()
	select {
	case <-cn.done:
	case <-t.C:
	}
	cn.fail(errClosing)
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
			c.touch() // the server's clock starts now
		}
		i := c.free[len(c.free)-1]
		c.free = c.free[:len(c.free)-1]
		s := &c.slots[i]
		s.req, s.state, s.errno = r, slotSending, 0
		s.seq++
		cookie := uint64(s.seq)<<32 | uint64(i)
		c.mu.Unlock()

		err := cn.send(r, cookie)
		c.touch()

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

// readLoop reads replies on cn until it breaks, and records why. After
// NBD_ESHUTDOWN it leaves cn open for run's NBD_CMD_DISC.
func (c *Client) readLoop(cn *conn) {
	var err error
	for err == nil {
		err = c.readReply(cn)
	}
	if errors.Is(err, errServerShutdown) {
		cn.setCause(err)
	} else {
		cn.fail(err)
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
	c.touch()
	c.mu.Lock()
	i, seq := rp.cookie&0xffffffff, uint32(rp.cookie>>32)
	if i >= uint64(len(c.slots)) || c.slots[i].seq != seq || c.slots[i].state == slotFree || c.slots[i].state == slotAnswered {
		c.mu.Unlock()
		return protoErr("reply with unknown cookie %#x", rp.cookie)
	}
	s := &c.slots[i]
	r := s.req
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
		for b := r.Data; len(b) > 0; { // a piece at a time: a slow link makes progress
			n := min(len(b), readPiece)
			if _, err := io.ReadFull(cn.br, b[:n]); err != nil {
				return fmt.Errorf("nbd: reading %d bytes of a read reply: %w", len(r.Data), closedErr(err))
			}
			b = b[n:]
			c.touch()
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
func (c *Client) disconnect(cn *conn) bool {
	cn.fail(errClosing) // the reason, if none came before
	<-cn.done
	why := cn.why()
	if errors.Is(why, errClosing) {
		why = nil
	}
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
	if why != nil {
		c.lastErr = why
		c.stats.disconnects++
	}
	closing := c.closing
	if closing && why != nil {
		c.closeErr = why
	} else if !closing {
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
