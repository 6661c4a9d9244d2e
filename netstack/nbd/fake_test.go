// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nbd

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fault is what the fake server does to one request instead of serving it
// plainly.
type fault int

// Faults.
const (
	faultNone          fault = iota
	faultDrop                // close the connection without doing the request
	faultDropAfter           // do the request, then close without replying
	faultMidReply            // do it, send half its reply, close
	faultBadMagic            // reply with a bad magic number
	faultUnknownCookie       // reply with a cookie the client never sent
	faultTruncate            // send a read's reply with half its data, close
	faultHang                // never reply again on this connection
	faultShutdown            // reply NBD_ESHUTDOWN without doing the request
	faultEIO                 // reply NBD_EIO without doing the request
	faultStructured          // reply with a structured reply header
	faultStall               // stop reading the connection until stallUntil is closed
)

// fakeReq is a request as the fake server decoded it.
type fakeReq struct {
	flags  cmdFlags
	op     Op
	cookie uint64
	offset uint64
	length uint32
}

// fakeServer is an NBD server over loopback TCP holding its export in
// memory, with faults to order.
type fakeServer struct {
	t    testing.TB
	addr string

	mu         sync.Mutex
	ln         net.Listener
	conns      map[net.Conn]bool
	data       []byte // len is the export's size
	flags      Flags
	export     string
	refuseGo   bool     // NBD_REP_ERR_UNSUP to NBD_OPT_GO
	noFixed    bool     // plain newstyle: no NBD_FLAG_FIXED_NEWSTYLE
	noZeroes   bool     // offer NBD_FLAG_NO_ZEROES (default on: see newFakeServer)
	blockSizes []uint32 // NBD_INFO_BLOCK_SIZE: min, preferred, max; nil: none
	outOfOrder bool     // serve each request after a random delay, in its own goroutine
	// fault, if set, picks the fault for request n (1, 2, ... across
	// connections).
	fault      func(n int64, r fakeReq) fault
	violations []string // protocol errors of the client
	aborts     int      // NBD_OPT_ABORT received
	discs      int      // NBD_CMD_DISC received
	flushes    int
	handshakes int
	// maxInflight is the most requests one connection had unanswered.
	maxInflight int
	// stallUntil ends faultStall.
	stallUntil chan struct{}

	requests atomic.Int64
	wg       sync.WaitGroup
}

// newFakeServer starts a server of an export of size bytes named "disk"
// on 127.0.0.1 offering flush, FUA, trim and multi-conn.
func newFakeServer(t testing.TB, size int) *fakeServer {
	t.Helper()
	s := &fakeServer{
		t:        t,
		conns:    map[net.Conn]bool{},
		data:     make([]byte, size),
		flags:    FlagHasFlags | FlagSendFlush | FlagSendFUA | FlagSendTrim | FlagCanMultiConn,
		export:   "disk",
		noZeroes: true,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.addr = ln, ln.Addr().String()
	s.wg.Add(1)
	go s.accept(ln)
	t.Cleanup(func() {
		s.kill()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, v := range s.violations {
			t.Errorf("fake server: client broke the protocol: %s", v)
		}
	})
	return s
}

// config is a client configuration for the server's export with short
// backoffs.
func (s *fakeServer) config() Config {
	return Config{
		Dial:       dialTCP,
		Addr:       s.addr,
		Export:     "disk",
		Timeout:    5 * time.Second,
		MinBackoff: time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	}
}

// dialTCP dials addr over TCP.
func dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// violation records a protocol error of the client.
func (s *fakeServer) violation(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

// kill closes the listener and every connection, and waits for the
// server's goroutines.
func (s *fakeServer) kill() {
	s.mu.Lock()
	if s.ln != nil {
		_ = s.ln.Close()
		s.ln = nil
	}
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// restart listens again on the same address after kill.
func (s *fakeServer) restart() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for range 100 { // the port may linger a moment
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("restarting the fake server: %v", err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(1)
	go s.accept(ln)
}

// accept serves the connections of ln until it is closed.
func (s *fakeServer) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.ln != ln {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			_ = c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// serveConn runs the handshake and the transmission phase on c.
func (s *fakeServer) serveConn(c net.Conn) {
	br := bufio.NewReader(c)
	if !s.negotiate(c, br) {
		return
	}
	s.mu.Lock()
	s.handshakes++
	s.mu.Unlock()
	s.mu.Lock()
	outOfOrder := s.outOfOrder
	s.mu.Unlock()
	fc := &fakeConn{s: s, c: c, inflight: map[uint64]bool{}, outOfOrder: outOfOrder}
	var wg sync.WaitGroup
	defer wg.Wait()
	hdr := make([]byte, requestLen)
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			return
		}
		if m := binary.BigEndian.Uint32(hdr); m != magicRequest {
			s.violation("request magic %#x", m)
			return
		}
		r := fakeReq{
			flags:  cmdFlags(binary.BigEndian.Uint16(hdr[4:])),
			op:     Op(binary.BigEndian.Uint16(hdr[6:])),
			cookie: binary.BigEndian.Uint64(hdr[8:]),
			offset: binary.BigEndian.Uint64(hdr[16:]),
			length: binary.BigEndian.Uint32(hdr[24:]),
		}
		if r.op == opDisc {
			s.mu.Lock()
			s.discs++
			s.mu.Unlock()
			return
		}
		var payload []byte
		if r.op == OpWrite {
			payload = fc.buf(int(r.length))
			if _, err := io.ReadFull(br, payload); err != nil {
				return
			}
		}
		if !fc.admit(r) {
			return
		}
		n := s.requests.Add(1)
		if outOfOrder {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
				fc.handle(n, r, payload)
			}()
			continue
		}
		if !fc.handle(n, r, payload) {
			return
		}
	}
}

// negotiate runs the server's side of the fixed newstyle handshake and
// reports whether transmission starts.
func (s *fakeServer) negotiate(c net.Conn, br *bufio.Reader) bool {
	s.mu.Lock()
	noFixed, noZeroes := s.noFixed, s.noZeroes
	s.mu.Unlock()
	var hf handshakeFlags
	if !noFixed {
		hf |= flagFixedNewstyle
	}
	if noZeroes {
		hf |= flagNoZeroes
	}
	b := binary.BigEndian.AppendUint64(nil, magicInit)
	b = binary.BigEndian.AppendUint64(b, magicOpt)
	b = binary.BigEndian.AppendUint16(b, uint16(hf))
	if _, err := c.Write(b); err != nil {
		return false
	}
	var cf [4]byte
	if _, err := io.ReadFull(br, cf[:]); err != nil {
		return false
	}
	if f := clientFlags(binary.BigEndian.Uint32(cf[:])); f&^clientFlags(hf) != 0 {
		s.violation("client flags %#x for handshake flags %#x", f, hf)
		return false
	}
	for {
		var h [16]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return false
		}
		if binary.BigEndian.Uint64(h[:]) != magicOpt {
			s.violation("option magic %#x", binary.BigEndian.Uint64(h[:]))
			return false
		}
		o := option(binary.BigEndian.Uint32(h[8:]))
		data := make([]byte, binary.BigEndian.Uint32(h[12:]))
		if _, err := io.ReadFull(br, data); err != nil {
			return false
		}
		if done, ok := s.option(c, o, data, noFixed, noZeroes); done {
			return ok
		}
	}
}

// option answers one option; done says the negotiation is over, ok that
// transmission starts.
func (s *fakeServer) option(c net.Conn, o option, data []byte, noFixed, noZeroes bool) (done, ok bool) {
	s.mu.Lock()
	export, size, flags, refuseGo, bs := s.export, uint64(len(s.data)), s.flags, s.refuseGo, s.blockSizes
	s.mu.Unlock()
	switch o {
	case optExportName:
		if string(data) != export {
			return true, false
		}
		b := binary.BigEndian.AppendUint64(nil, size)
		b = binary.BigEndian.AppendUint16(b, uint16(flags))
		if !noZeroes {
			b = append(b, make([]byte, zeroesLen)...)
		}
		_, err := c.Write(b)
		return true, err == nil
	case optAbort:
		s.mu.Lock()
		s.aborts++
		s.mu.Unlock()
		_ = writeOptReply(c, o, repAck, nil)
		return true, false
	case optGo:
		if noFixed {
			s.violation("NBD_OPT_GO without fixed newstyle")
			return true, false
		}
		if refuseGo {
			return writeOptReply(c, o, repErrUnsup, nil) != nil, false
		}
		if len(data) < 4 || int(binary.BigEndian.Uint32(data)) > len(data)-6 {
			s.violation("malformed NBD_OPT_GO")
			return true, false
		}
		if name := string(data[4 : 4+binary.BigEndian.Uint32(data)]); name != export {
			return writeOptReply(c, o, repErrUnknown, []byte("no export named "+name)) != nil, false
		}
		info := binary.BigEndian.AppendUint16(nil, uint16(infoExport))
		info = binary.BigEndian.AppendUint64(info, size)
		info = binary.BigEndian.AppendUint16(info, uint16(flags))
		err := writeOptReply(c, o, repInfo, info)
		if err == nil && bs != nil {
			b := binary.BigEndian.AppendUint16(nil, uint16(infoBlockSize))
			for _, v := range bs {
				b = binary.BigEndian.AppendUint32(b, v)
			}
			err = writeOptReply(c, o, repInfo, b)
		}
		if err == nil {
			err = writeOptReply(c, o, repAck, nil)
		}
		return true, err == nil
	}
	return writeOptReply(c, o, repErrUnsup, nil) != nil, false
}

// writeOptReply sends an option reply.
func writeOptReply(w io.Writer, o option, t replyType, data []byte) error {
	b := binary.BigEndian.AppendUint64(nil, magicOptReply)
	b = binary.BigEndian.AppendUint32(b, uint32(o))
	b = binary.BigEndian.AppendUint32(b, uint32(t))
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	_, err := w.Write(append(b, data...))
	return err
}

// fakeConn is one connection of the fake server in transmission.
type fakeConn struct {
	s        *fakeServer
	c        net.Conn
	wmu      sync.Mutex // serializes replies; guards hdr
	hdr      [replyLen]byte
	mu       sync.Mutex
	inflight map[uint64]bool // cookies not yet answered
	hung     bool
	dead     bool // guarded by s.mu: do and answer nothing more
	// outOfOrder is the server's setting when the connection opened.
	outOfOrder bool
	spare      []byte // payload buffer of the in-order server
}

// buf is a payload buffer: one reused buffer when serving in order.
func (fc *fakeConn) buf(n int) []byte {
	if fc.outOfOrder {
		return make([]byte, n)
	}
	if cap(fc.spare) < n {
		fc.spare = make([]byte, n)
	}
	return fc.spare[:n]
}

// admit checks a request's cookie is not in flight already, and its
// alignment and length.
func (fc *fakeConn) admit(r fakeReq) bool {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.inflight[r.cookie] {
		fc.s.violation("cookie %#x reused while in flight", r.cookie)
		return false
	}
	fc.inflight[r.cookie] = true
	fc.s.mu.Lock()
	fc.s.maxInflight = max(fc.s.maxInflight, len(fc.inflight))
	fc.s.mu.Unlock()
	switch {
	case r.op == OpFlush && (r.offset != 0 || r.length != 0):
		fc.s.violation("flush with offset %d length %d", r.offset, r.length)
	case r.op != OpFlush && (r.offset%BlockSize != 0 || r.length%BlockSize != 0 || r.length == 0):
		fc.s.violation("%v of %d at %d: unaligned or empty", r.op, r.length, r.offset)
	case r.length > MaxPayload:
		fc.s.violation("%v of %d bytes", r.op, r.length)
	}
	return true
}

// handle serves one request, or does its fault; false ends the
// connection.
func (fc *fakeConn) handle(n int64, r fakeReq, payload []byte) bool {
	s := fc.s
	f := faultNone
	s.mu.Lock()
	pick := s.fault
	s.mu.Unlock()
	if pick != nil {
		f = pick(n, r)
	}
	fc.mu.Lock()
	hung := fc.hung || f == faultHang
	fc.hung = hung
	fc.mu.Unlock()
	switch {
	case hung:
		return true
	case f == faultDrop:
		fc.die(true)
		return false
	case f == faultStall:
		s.mu.Lock()
		until := s.stallUntil
		s.mu.Unlock()
		<-until
		fc.die(true)
		return false
	case f == faultShutdown:
		return fc.reply(magicReply, ESHUTDOWN, r.cookie, nil, false)
	case f == faultEIO:
		return fc.reply(magicReply, EIO, r.cookie, nil, false)
	case f == faultBadMagic || f == faultUnknownCookie || f == faultStructured:
		// The connection serves nothing more: the client must drop it.
		fc.die(false)
		var data []byte
		if r.op == OpRead {
			data = make([]byte, r.length)
		}
		switch f {
		case faultBadMagic:
			return fc.reply(0xdeadbeef, 0, r.cookie, data, true)
		case faultUnknownCookie:
			return fc.reply(magicReply, 0, r.cookie^0x5555_0000_0000, data, true)
		}
		return fc.reply(magicStructured, 0, r.cookie, nil, true)
	}
	errno, data, ok := fc.apply(r, payload)
	switch {
	case !ok:
		return false
	case f == faultDropAfter:
		fc.die(true)
		return false
	case f == faultMidReply || f == faultTruncate:
		s.mu.Lock()
		b := encodeReply(magicReply, errno, r.cookie, data)
		s.mu.Unlock()
		cut := len(b) / 2
		if f == faultTruncate && len(data) > 0 {
			cut = replyLen + len(data)/2
		}
		fc.die(false)
		fc.wmu.Lock()
		_, _ = fc.c.Write(b[:cut])
		fc.wmu.Unlock()
		_ = fc.c.Close()
		return false
	}
	return fc.reply(magicReply, errno, r.cookie, data, false)
}

// die marks the connection dead, so that none of its requests still in
// the server is done or answered, and closes it if asked.
func (fc *fakeConn) die(closeIt bool) {
	fc.s.mu.Lock()
	fc.dead = true
	fc.s.mu.Unlock()
	if closeIt {
		_ = fc.c.Close()
	}
}

// apply does a request on the export and returns the error value and, for
// a read, the data (valid under s.mu); false if the connection is dead.
func (fc *fakeConn) apply(r fakeReq, payload []byte) (Errno, []byte, bool) {
	s := fc.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if fc.dead {
		return 0, nil, false
	}
	size := uint64(len(s.data))
	if r.op != OpFlush && (r.offset > size || uint64(r.length) > size-r.offset) {
		return EINVAL, nil, true
	}
	end := r.offset + uint64(r.length)
	switch r.op {
	case OpRead:
		return 0, s.data[r.offset:end], true
	case OpWrite:
		if s.flags&FlagReadOnly != 0 {
			return EPERM, nil, true
		}
		copy(s.data[r.offset:end], payload)
	case OpTrim:
		if s.flags&FlagReadOnly != 0 {
			return EPERM, nil, true
		}
		clear(s.data[r.offset:end])
	case OpFlush:
		s.flushes++
	default:
		return EINVAL, nil, true
	}
	return 0, nil, true
}

// encodeReply makes a reply; data is copied.
func encodeReply(magic uint32, errno Errno, cookie uint64, data []byte) []byte {
	b := make([]byte, replyLen, replyLen+len(data))
	binary.BigEndian.PutUint32(b, magic)
	binary.BigEndian.PutUint32(b[4:], uint32(errno))
	binary.BigEndian.PutUint64(b[8:], cookie)
	if errno == 0 {
		b = append(b, data...)
	}
	return b
}

// reply sends a reply and forgets the cookie; nothing on a dead
// connection unless forced. The server's lock is held while the data is
// sent, so that a read's data is not torn by a concurrent write.
func (fc *fakeConn) reply(magic uint32, errno Errno, cookie uint64, data []byte, force bool) bool {
	fc.mu.Lock()
	delete(fc.inflight, cookie)
	fc.mu.Unlock()
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	fc.s.mu.Lock()
	defer fc.s.mu.Unlock()
	if fc.dead && !force {
		return false
	}
	hdr := fc.hdr[:]
	binary.BigEndian.PutUint32(hdr, magic)
	binary.BigEndian.PutUint32(hdr[4:], uint32(errno))
	binary.BigEndian.PutUint64(hdr[8:], cookie)
	if _, err := fc.c.Write(hdr); err != nil {
		return false
	}
	if errno == 0 && len(data) > 0 {
		if _, err := fc.c.Write(data); err != nil {
			return false
		}
	}
	return true
}

// setSize changes the export's size (the next handshake reports it).
func (s *fakeServer) setSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= len(s.data) {
		s.data = s.data[:n]
	} else {
		s.data = append(s.data, make([]byte, n-len(s.data))...)
	}
}

// snapshot copies the export's content.
func (s *fakeServer) snapshot() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.data...)
}

// set changes server settings under its lock.
func (s *fakeServer) set(f func(s *fakeServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// counts returns the handshakes, NBD_CMD_DISCs, flushes and NBD_OPT_ABORTs
// seen.
func (s *fakeServer) counts() (handshakes, discs, flushes, aborts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handshakes, s.discs, s.flushes, s.aborts
}
