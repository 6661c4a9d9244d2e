// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nbd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxInFlight = 16
	DefaultTimeout     = 30 * time.Second
	DefaultMinBackoff  = 50 * time.Millisecond
	DefaultMaxBackoff  = 2 * time.Second
	// maxInFlight bounds Config.MaxInFlight: a cookie's low half is the
	// slot number.
	maxInFlight = 1 << 16
)

// Config configures a Client.
type Config struct {
	// Dial opens a stream connection to the server at addr, e.g.
	// gVisor's gonet.DialContextTCP in the image or a net.Dialer's
	// DialContext("tcp", addr) in a test; the connection should have
	// Nagle's algorithm off (proto.md, "Protocol phases"). It is called
	// again after every broken connection and must return when ctx is
	// done.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Addr is the server's address, handed to Dial and shown in Status.
	Addr string
	// Export is the name of the export ("" is the server's default one).
	Export string
	// MaxInFlight is the number of requests sent and not yet answered at
	// once (default DefaultMaxInFlight); more wait in a queue.
	MaxInFlight int
	// Timeout is how long requests wait without a working connection
	// before they fail with ErrTimeout (default DefaultTimeout). It also
	// bounds the wait for a reply: a server that answers nothing for
	// Timeout while requests are in flight is taken as gone and the
	// client dials again.
	Timeout time.Duration
	// DialTimeout bounds one dial and handshake (default a quarter of
	// Timeout, at most Timeout): an attempt whose connection request
	// or handshake was lost (a server's host that went away and came
	// back, a link that dropped a SYN) is given up and made again,
	// rather than using up the requests' whole Timeout.
	DialTimeout time.Duration
	// MinBackoff and MaxBackoff bound the pause between two failed dials,
	// which doubles from MinBackoff up to MaxBackoff (defaults
	// DefaultMinBackoff and DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
}

// Request is one operation on the export, handed to Client.Submit.
type Request struct {
	// Op is the operation.
	Op Op
	// Offset is the byte offset in the export of a read, write or trim.
	Offset uint64
	// Data is the buffer a read fills or a write sends; its length is the
	// request's. It must stay untouched until Done.
	Data []byte
	// Length is the length of a trim (reads and writes take len(Data)).
	Length uint32
	// FUA asks the server to persist a write or trim before answering
	// (NBD_CMD_FLAG_FUA; the export must offer FlagSendFUA).
	FUA bool
	// Done is called once the request is complete, exactly once, with Err
	// set: from one of the client's goroutines with no lock held, never
	// from within Submit (except after Close, when Submit completes the
	// request itself). Done may submit requests, this one included; it
	// must not call Close, and should not block: the replies behind it
	// wait.
	Done func(*Request)
	// Err is nil on success; otherwise it wraps one of the package's
	// errors or an Errno.
	Err error

	next  *Request  // in a requestList; guarded by Client.mu
	start time.Time // when submitted, for the latency
	busy  bool      // submitted and Done not yet called; guarded by Client.mu
}

// length is the number of bytes the request covers.
func (r *Request) length() uint64 {
	if r.Op == OpTrim {
		return uint64(r.Length)
	}
	return uint64(len(r.Data))
}

// requestList is a FIFO of requests linked through Request.next, so that
// queueing allocates nothing.
type requestList struct {
	head, tail *Request
	n          int
}

// push appends r.
func (l *requestList) push(r *Request) {
	r.next = nil
	if l.tail == nil {
		l.head = r
	} else {
		l.tail.next = r
	}
	l.tail = r
	l.n++
}

// pushFront puts r first.
func (l *requestList) pushFront(r *Request) {
	r.next = l.head
	l.head = r
	if l.tail == nil {
		l.tail = r
	}
	l.n++
}

// pop removes and returns the first request, or nil.
func (l *requestList) pop() *Request {
	r := l.head
	if r == nil {
		return nil
	}
	l.head = r.next
	if l.head == nil {
		l.tail = nil
	}
	r.next = nil
	l.n--
	return r
}

// take empties the list and returns its first request; the rest follow
// through next.
func (l *requestList) take() *Request {
	r := l.head
	*l = requestList{}
	return r
}

// slotState is where a request in a slot is.
type slotState uint8

// Slot states.
const (
	slotFree     slotState = iota
	slotSending            // its header (and data) are being written
	slotSent               // on the wire: the reader may answer it
	slotAnswered           // the reply came while it was still being sent
)

// slot is one of the MaxInFlight places of a request on the connection.
// A request's cookie is its slot number in the low 32 bits and the slot's
// sequence number in the high ones, so a reply naming a slot's earlier
// request is told from one for its current request.
type slot struct {
	req   *Request
	seq   uint32
	state slotState
	errno Errno // of a reply that came while the request was sent
}

// Client is a connection to one export of an NBD server, kept up across
// server restarts. Its methods are safe for concurrent use.
//
// Goroutines: run (one for the client's life) dials, performs the
// handshake, sends requests and handles broken connections; a reader per
// connection reads replies and completes requests, and a watchdog breaks
// the connection when the server stops answering. A dial in progress has
// a goroutine of its own.
//
// Lock rules: mu guards every field below it, the slots' fields and the
// unexported fields of every submitted Request. Nobody holds mu while
// reading from or writing to the connection, while dialing, or while
// calling a request's Done. A request in a slot belongs to the
// connection: only the reader completes it (run does when its reply came
// while it was being sent), and run puts the slots' requests back in the
// queue only after the reader has exited; whoever owns a request reads
// its exported fields without mu. The fields above mu are set by New and
// never change, but for progress, which is atomic. A conn's writer and
// request header belong to run, its reader and reply header to its reader
// goroutine; conn.mu guards its cause.
type Client struct {
	cfg     Config
	wake    chan struct{} // kicks run: cap 1
	stopped chan struct{} // closed when run has returned
	waiters sync.Pool     // of *waiter, for the synchronous calls
	epoch   time.Time     // the client's start, for progress
	// progress is when the server last answered or took a request, in
	// nanoseconds since epoch.
	progress atomic.Int64

	mu        sync.Mutex
	state     State
	closing   bool // Close was called: no new requests
	info      Info // of the latest handshake
	haveInfo  bool
	conn      *conn       // the current connection, nil between two
	pending   requestList // submitted, not yet sent on conn (re-sends first)
	rejected  requestList // to complete with the Err already set
	slots     []slot      // MaxInFlight
	free      []uint32    // free slot numbers, a stack
	downSince time.Time   // zero while a connection works
	lastErr   error
	closeErr  error
	stats     counters
}

// New checks cfg and starts a client that connects in the background:
// requests submitted before the first handshake wait for it (at most
// Timeout). Dial is New waiting for that handshake.
func New(cfg Config) (*Client, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	go c.run(nil)
	return c, nil
}

// Dial connects to the server and opens the export before it returns the
// client, so that the export's size is known (Info). It dials again with
// backoff while the server cannot be reached, until ctx is done or
// cfg.Timeout has passed (then the error wraps ErrTimeout); a server's
// refusal of the export (an *OptionError, e.g. ErrUnknownExport) ends it
// at once.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(parent, c.cfg.Timeout)
	defer cancel()
	backoff := time.Duration(0)
	var last error // of the latest attempt the deadline did not cut short
	for {
		cn, err := c.connect(ctx)
		if err == nil {
			c.mu.Lock()
			c.connected(cn)
			c.mu.Unlock()
			go c.run(cn)
			return c, nil
		}
		var oe *OptionError
		if errors.As(err, &oe) {
			return nil, err
		}
		// An attempt the deadline ended says only that time ran out
		// (the dialer may see the deadline pass before ctx.Err does).
		if deadline, _ := ctx.Deadline(); (ctx.Err() == nil && time.Now().Before(deadline)) || last == nil {
			last = err
		}
		backoff = c.nextBackoff(backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			if parent.Err() != nil {
				return nil, fmt.Errorf("nbd: connecting to %s: %w (last error: %v)", c.cfg.Addr, parent.Err(), last)
			}
			return nil, fmt.Errorf("nbd: connecting to %s for %v: %w (last error: %v)", c.cfg.Addr, c.cfg.Timeout, ErrTimeout, last)
		case <-t.C:
		}
	}
}

// newClient checks cfg, fills in its defaults and makes the client in the
// connecting state.
func newClient(cfg Config) (*Client, error) {
	if cfg.Dial == nil {
		return nil, errors.New("nbd: no Dial function")
	}
	if len(cfg.Export) > maxName {
		return nil, fmt.Errorf("nbd: export name of %d bytes is longer than %d", len(cfg.Export), maxName)
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxInFlight < 1 || cfg.MaxInFlight > maxInFlight {
		return nil, fmt.Errorf("nbd: MaxInFlight %d is not between 1 and %d", cfg.MaxInFlight, maxInFlight)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = cfg.Timeout / 4
	}
	cfg.DialTimeout = min(cfg.DialTimeout, cfg.Timeout)
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	c := &Client{
		cfg:       cfg,
		wake:      make(chan struct{}, 1),
		stopped:   make(chan struct{}),
		state:     StateConnecting,
		slots:     make([]slot, cfg.MaxInFlight),
		free:      make([]uint32, 0, cfg.MaxInFlight),
		downSince: time.Now(),
		epoch:     time.Now(),
	}
	for i := cfg.MaxInFlight - 1; i >= 0; i-- {
		c.free = append(c.free, uint32(i))
	}
	return c, nil
}

// kick wakes run without blocking.
func (c *Client) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Submit queues r; r.Done is called when it completes. Submit never
// blocks on the network and allocates nothing. A request that cannot be
// valid (see Request) completes with an error at once, one that does not
// fit the export (past its end, a write on a read-only export) when the
// client is about to send it: the export may change across reconnects.
// Submitting a request again before its Done was called panics.
func (c *Client) Submit(r *Request) {
	if r.Done == nil {
		panic("nbd: Submit of a request without Done")
	}
	now := time.Now()
	c.mu.Lock()
	if r.busy {
		c.mu.Unlock()
		panic("nbd: Submit of a request that is not done yet")
	}
	r.busy, r.start, r.Err = true, now, nil
	var info *Info
	if c.conn != nil { // else the next handshake may describe another export
		info = &c.info
	}
	err := check(r, info)
	switch {
	case err == nil && c.closing:
		err = fmt.Errorf("nbd: %v: %w", r.Op, ErrClosed)
	case err == nil:
		c.pending.push(r)
		c.mu.Unlock()
		c.kick()
		return
	}
	r.Err = err
	if c.state == StateClosed {
		c.mu.Unlock()
		c.complete(r, err)
		return
	}
	c.rejected.push(r)
	c.mu.Unlock()
	c.kick()
}

// check returns why r is not a valid request, against info when it is not
// nil (the export's latest description), or nil.
func check(r *Request, info *Info) error {
	n := r.length()
	switch r.Op {
	case OpRead, OpWrite:
		if r.Length != 0 && uint64(r.Length) != n {
			return fmt.Errorf("nbd: %v with Length %d but %d bytes of Data: %w", r.Op, r.Length, n, ErrInvalid)
		}
	case OpTrim:
		if r.Data != nil {
			return fmt.Errorf("nbd: trim with Data: %w", ErrInvalid)
		}
	case OpFlush:
		if r.Offset != 0 || r.Length != 0 || r.Data != nil || r.FUA {
			return fmt.Errorf("nbd: flush with an offset, a length, data or FUA: %w", ErrInvalid)
		}
		if info != nil && info.Flags&FlagSendFlush == 0 {
			return fmt.Errorf("nbd: flush: the export does not offer NBD_FLAG_SEND_FLUSH: %w", ErrUnsupported)
		}
		return nil
	default:
		return fmt.Errorf("nbd: unknown operation %v: %w", r.Op, ErrInvalid)
	}
	if n == 0 {
		return fmt.Errorf("nbd: %v of 0 bytes at %d: %w", r.Op, r.Offset, ErrInvalid)
	}
	if r.FUA && r.Op == OpRead {
		return fmt.Errorf("nbd: read with FUA: %w", ErrInvalid)
	}
	align, limit := uint64(BlockSize), uint64(MaxPayload)
	if info != nil {
		align, limit = uint64(info.MinBlock), uint64(info.MaxPayload)
	}
	if n > limit {
		return fmt.Errorf("nbd: %v of %d bytes at %d: longer than %d: %w", r.Op, n, r.Offset, limit, ErrTooLarge)
	}
	if r.Offset%align != 0 || n%align != 0 {
		return fmt.Errorf("nbd: %v of %d bytes at %d: not a multiple of %d: %w", r.Op, n, r.Offset, align, ErrUnaligned)
	}
	if info == nil {
		return nil
	}
	return checkExport(r, n, info)
}

// checkExport returns why r does not fit the export info describes.
func checkExport(r *Request, n uint64, info *Info) error {
	if r.Offset > info.Size || n > info.Size-r.Offset {
		return fmt.Errorf("nbd: %v of %d bytes at %d: past the export's end at %d: %w", r.Op, n, r.Offset, info.Size, ErrOutOfRange)
	}
	if r.Op != OpRead && info.Flags&FlagReadOnly != 0 {
		return fmt.Errorf("nbd: %v of %d bytes at %d: %w", r.Op, n, r.Offset, ErrReadOnly)
	}
	if r.Op == OpTrim && info.Flags&FlagSendTrim == 0 {
		return fmt.Errorf("nbd: trim: the export does not offer NBD_FLAG_SEND_TRIM: %w", ErrUnsupported)
	}
	if r.FUA && info.Flags&FlagSendFUA == 0 {
		return fmt.Errorf("nbd: %v with FUA: the export does not offer NBD_FLAG_SEND_FUA: %w", r.Op, ErrUnsupported)
	}
	return nil
}

// Info returns what the latest handshake said of the export, and false
// before the first one.
func (c *Client) Info() (Info, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info, c.haveInfo
}

// Close stops taking requests, lets those already submitted complete
// while a connection works (failing them with ErrClosed otherwise), sends
// NBD_CMD_DISC and stops the client's goroutines. It returns the error of
// the final disconnect, if any. Close may be called more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.kick()
	<-c.stopped
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}
