// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nbd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
	"net"
	"strings"
	"testing"
)

// fuzzConn is a server's side as the fuzzer writes it: reads return at
// most chunk bytes at a time, as a TCP stream may; the client's writes are
// kept for checking.
type fuzzConn struct {
	in    []byte
	chunk int
	out   bytes.Buffer
}

func (f *fuzzConn) Read(p []byte) (int, error) {
	if len(f.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), f.chunk)], f.in)
	f.in = f.in[n:]
	return n, nil
}

func (f *fuzzConn) Write(p []byte) (int, error) { return f.out.Write(p) }

// greeting is a server's first message with handshake flags hf.
func greeting(hf handshakeFlags) []byte {
	b := binary.BigEndian.AppendUint64(nil, magicInit)
	b = binary.BigEndian.AppendUint64(b, magicOpt)
	return binary.BigEndian.AppendUint16(b, uint16(hf))
}

// optReply is an option reply to o.
func optReply(o option, t replyType, data []byte) []byte {
	var buf bytes.Buffer
	_ = writeOptReply(&buf, o, t, data)
	return buf.Bytes()
}

// infoExportReply is NBD_REP_INFO with NBD_INFO_EXPORT.
func infoExportReply(size uint64, fl Flags) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(infoExport))
	b = binary.BigEndian.AppendUint64(b, size)
	return optReply(optGo, repInfo, binary.BigEndian.AppendUint16(b, uint16(fl)))
}

// infoBlockReply is NBD_REP_INFO with NBD_INFO_BLOCK_SIZE.
func infoBlockReply(minimum, preferred, maximum uint32) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(infoBlockSize))
	b = binary.BigEndian.AppendUint32(b, minimum)
	b = binary.BigEndian.AppendUint32(b, preferred)
	return optReply(optGo, repInfo, binary.BigEndian.AppendUint32(b, maximum))
}

// exportAnswer is the answer to NBD_OPT_EXPORT_NAME.
func exportAnswer(size uint64, fl Flags, zeroes bool) []byte {
	b := binary.BigEndian.AppendUint64(nil, size)
	b = binary.BigEndian.AppendUint16(b, uint16(fl))
	if zeroes {
		b = append(b, make([]byte, zeroesLen)...)
	}
	return b
}

// join concatenates byte slices.
func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// FuzzHandshake feeds the handshake a server's stream from the fuzzer, in
// short reads. It must not panic, must return errors of the package's
// form, must open an export only with sane size constraints, and must
// write only well-formed messages: client flags the server offered, then
// options it may send in that order.
func FuzzHandshake(f *testing.F) {
	both := flagFixedNewstyle | flagNoZeroes
	fl := FlagHasFlags | FlagSendFlush | FlagSendTrim
	f.Add(uint8(7), join(greeting(both), infoExportReply(1<<30, fl), optReply(optGo, repAck, nil)))
	f.Add(uint8(1), join(greeting(both), infoBlockReply(4096, 65536, 1<<20), infoExportReply(1<<20, fl),
		optReply(optGo, repInfo, []byte{0, 2, 'h', 'i'}), optReply(optGo, repAck, nil)))
	f.Add(uint8(3), join(greeting(both), optReply(optGo, repErrUnsup, nil), exportAnswer(1<<20, fl, false)))
	f.Add(uint8(5), join(greeting(flagFixedNewstyle), optReply(optGo, repErrUnsup, nil), exportAnswer(1<<20, fl, true)))
	f.Add(uint8(31), join(greeting(0), exportAnswer(4096, fl|FlagReadOnly, true)))
	f.Add(uint8(2), join(greeting(both), optReply(optGo, repErrUnknown, []byte("no such export\x01"))))
	f.Add(uint8(2), join(greeting(both), optReply(optGo, repErrShutdown, nil)))
	f.Add(uint8(9), join(greeting(both), infoBlockReply(3, 0, 0), optReply(optGo, repAck, nil)))
	f.Add(uint8(9), join(greeting(both), optReply(optGo, repAck, nil)))
	f.Add(uint8(4), join(binary.BigEndian.AppendUint64(nil, magicInit), binary.BigEndian.AppendUint64(nil, magicOldstyle), make([]byte, 140)))
	f.Add(uint8(16), []byte("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"))
	f.Fuzz(func(t *testing.T, chunk uint8, data []byte) {
		rw := &fuzzConn{in: data, chunk: int(chunk%32) + 1}
		info, err := handshake(rw, "disk")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "nbd: ") {
				t.Fatalf("error %q without the package's prefix", err)
			}
		} else {
			checkInfo(t, info)
		}
		var offered handshakeFlags
		if len(data) >= 18 {
			offered = handshakeFlags(binary.BigEndian.Uint16(data[16:]))
		}
		checkClientMessages(t, rw.out.Bytes(), offered, err == nil, info.Fallback)
	})
}

// checkInfo checks the size constraints a successful handshake returns.
func checkInfo(t *testing.T, info Info) {
	t.Helper()
	if bits.OnesCount32(info.MinBlock) != 1 || info.MinBlock < BlockSize || info.MinBlock > maxMinBlock {
		t.Fatalf("MinBlock %d", info.MinBlock)
	}
	if info.MaxPayload == 0 || info.MaxPayload > MaxPayload || info.MaxPayload%info.MinBlock != 0 {
		t.Fatalf("MaxPayload %d with MinBlock %d", info.MaxPayload, info.MinBlock)
	}
	if p := info.PreferredBlock; p != 0 && (bits.OnesCount32(p) != 1 || p < info.MinBlock) {
		t.Fatalf("PreferredBlock %d with MinBlock %d", p, info.MinBlock)
	}
}

// checkClientMessages parses what the client wrote in a handshake.
func checkClientMessages(t *testing.T, out []byte, offered handshakeFlags, ok, fallback bool) {
	t.Helper()
	if len(out) == 0 {
		return // the greeting was refused
	}
	if len(out) < 4 {
		t.Fatalf("client flags of %d bytes", len(out))
	}
	if cf := clientFlags(binary.BigEndian.Uint32(out)); uint32(cf)&^uint32(offered) != 0 || cf&^(clientFixedNewstyle|clientNoZeroes) != 0 {
		t.Fatalf("client flags %#x for handshake flags %#x", cf, offered)
	}
	out = out[4:]
	var sent []option
	for len(out) > 0 {
		if len(out) < 16 || binary.BigEndian.Uint64(out) != magicOpt {
			t.Fatalf("malformed option %x", out)
		}
		o, n := option(binary.BigEndian.Uint32(out[8:])), binary.BigEndian.Uint32(out[12:])
		if uint32(len(out)-16) < n {
			t.Fatalf("%v of %d bytes with %d written", o, n, len(out)-16)
		}
		body := out[16 : 16+n]
		out = out[16+n:]
		switch o {
		case optGo:
			want := join(binary.BigEndian.AppendUint32(nil, 4), []byte("disk"), []byte{0, 1, 0, byte(infoBlockSize)})
			if !bytes.Equal(body, want) {
				t.Fatalf("NBD_OPT_GO data %x", body)
			}
		case optExportName:
			if string(body) != "disk" {
				t.Fatalf("NBD_OPT_EXPORT_NAME %q", body)
			}
		case optAbort:
			if n != 0 {
				t.Fatalf("NBD_OPT_ABORT with %d bytes", n)
			}
		default:
			t.Fatalf("option %v", o)
		}
		if len(sent) > 0 && sent[len(sent)-1] != optGo {
			t.Fatalf("%v after %v", o, sent[len(sent)-1])
		}
		sent = append(sent, o)
	}
	if ok {
		last := optGo
		if fallback {
			last = optExportName
		}
		if len(sent) == 0 || sent[len(sent)-1] != last {
			t.Fatalf("export opened after options %v", sent)
		}
	}
}

// fuzzSlot is a request in flight in FuzzReplies.
type fuzzSlot struct {
	op    Op
	size  int
	state slotState
}

// fuzzSlots are the slots of FuzzReplies: slot i has sequence number i+1.
func fuzzSlots() [7]fuzzSlot {
	return [...]fuzzSlot{
		{OpRead, 512, slotSent},
		{OpWrite, 512, slotSent},
		{OpRead, 1024, slotSent},
		{OpFlush, 0, slotSent},
		{OpWrite, 4096, slotSending},
		{OpRead, 512, slotSending},
		{}, // free
	}
}

// simpleReply is a reply header followed by data.
func simpleReply(magic uint32, errno Errno, cookie uint64, data []byte) []byte {
	return encodeReply(magic, errno, cookie, data)
}

// fuzzCookie is slot i's cookie in FuzzReplies.
func fuzzCookie(i int) uint64 { return uint64(i+1)<<32 | uint64(i) }

// FuzzReplies feeds the transmission reply decoder a server's stream from
// the fuzzer, in short reads, with requests of every kind in flight. The
// decoder must agree with a plain model of the protocol on which requests
// complete, with which error and, for reads, with which data; must stop at
// the first reply it cannot take; and must call each Done once at most.
func FuzzReplies(f *testing.F) {
	r512 := bytes.Repeat([]byte{0xA5}, 512)
	f.Add(uint8(5), join(simpleReply(magicReply, 0, fuzzCookie(1), nil), simpleReply(magicReply, 0, fuzzCookie(0), r512),
		simpleReply(magicReply, 0, fuzzCookie(3), nil)))
	f.Add(uint8(31), join(simpleReply(magicReply, EIO, fuzzCookie(2), nil), simpleReply(magicReply, 0, fuzzCookie(4), nil),
		simpleReply(magicReply, 0, fuzzCookie(0), r512)))
	f.Add(uint8(1), join(simpleReply(magicReply, 0, fuzzCookie(0), r512[:100])))
	f.Add(uint8(8), join(simpleReply(magicReply, 0, fuzzCookie(6), nil)))
	f.Add(uint8(8), join(simpleReply(magicReply, 0, fuzzCookie(1)^1<<40, nil)))
	f.Add(uint8(8), join(simpleReply(magicStructured, 0, fuzzCookie(1), nil)))
	f.Add(uint8(8), join(simpleReply(magicReply, ESHUTDOWN, fuzzCookie(1), nil)))
	f.Add(uint8(8), join(simpleReply(magicReply, 0, fuzzCookie(5), r512)))
	f.Add(uint8(8), join(simpleReply(magicReply, EINVAL, fuzzCookie(5), nil), simpleReply(magicReply, 0, fuzzCookie(5), nil)))
	f.Fuzz(func(t *testing.T, chunk uint8, data []byte) {
		c, reqs, calls := fuzzClient(t)
		cn := &conn{br: bufio.NewReaderSize(&fuzzConn{in: data, chunk: int(chunk%64) + 1}, 16)}
		for i := 0; ; i++ {
			if err := c.readReply(cn); err != nil {
				if !strings.HasPrefix(err.Error(), "nbd: ") {
					t.Fatalf("error %q without the package's prefix", err)
				}
				break
			}
			if i > len(data)/replyLen {
				t.Fatal("more replies taken than the stream holds")
			}
		}
		want := modelReplies(data)
		for i := range fuzzSlots() {
			checkSlot(t, c, i, reqs[i], calls[i], want[i])
		}
		seen := map[uint32]bool{}
		for _, i := range c.free {
			if seen[i] || c.slots[i].state != slotFree {
				t.Fatalf("free list %v with slot %d in state %d", c.free, i, c.slots[i].state)
			}
			seen[i] = true
		}
		for i, s := range c.slots {
			if s.state == slotFree && !seen[uint32(i)] {
				t.Fatalf("slot %d free but not in the free list %v", i, c.free)
			}
		}
	})
}

// fuzzClient is a client without goroutines whose slots hold fuzzSlots;
// calls[i] counts slot i's Done calls.
func fuzzClient(t *testing.T) (*Client, []*Request, []int) {
	slots := fuzzSlots()
	c, err := newClient(Config{
		Dial:        func(context.Context, string) (net.Conn, error) { return nil, errors.New("no") },
		MaxInFlight: len(slots),
	})
	if err != nil {
		t.Fatal(err)
	}
	reqs := make([]*Request, len(slots))
	calls := make([]int, len(slots))
	c.free = c.free[:0]
	for i, fs := range slots {
		if fs.state == slotFree {
			c.free = append(c.free, uint32(i))
			continue
		}
		r := &Request{Op: fs.op, busy: true}
		if fs.op == OpRead || fs.op == OpWrite {
			r.Data = make([]byte, fs.size)
		}
		r.Done = func(*Request) { calls[i]++ }
		reqs[i] = r
		c.slots[i] = slot{req: r, seq: uint32(i + 1), state: fs.state}
	}
	return c, reqs, calls
}

// modelOutcome is what the model says of one slot's request.
type modelOutcome struct {
	done     bool
	answered bool // a reply came while it was being sent
	errno    Errno
	data     []byte // of a read
}

// modelReplies decodes the stream as the protocol says, independently of
// readReply, and returns each slot's outcome.
func modelReplies(data []byte) []modelOutcome {
	slots := fuzzSlots()
	out := make([]modelOutcome, len(slots))
	for len(data) >= replyLen {
		magic := binary.BigEndian.Uint32(data)
		errno := Errno(binary.BigEndian.Uint32(data[4:]))
		cookie := binary.BigEndian.Uint64(data[8:])
		data = data[replyLen:]
		i := int(cookie & 0xffffffff)
		if magic != magicReply || i >= len(slots) || cookie != fuzzCookie(i) ||
			slots[i].state == slotFree || out[i].done || out[i].answered || errno == ESHUTDOWN {
			break
		}
		fs := slots[i]
		if fs.state == slotSending {
			if fs.op == OpRead && errno == 0 {
				break
			}
			out[i] = modelOutcome{answered: true, errno: errno}
			continue
		}
		o := modelOutcome{done: true, errno: errno}
		if fs.op == OpRead && errno == 0 {
			if len(data) < fs.size {
				break
			}
			o.data, data = data[:fs.size], data[fs.size:]
		}
		out[i] = o
	}
	return out
}

// checkSlot compares slot i after the decoder ran with the model.
func checkSlot(t *testing.T, c *Client, i int, r *Request, calls int, want modelOutcome) {
	t.Helper()
	if r == nil {
		return
	}
	s := c.slots[i]
	switch {
	case calls > 1:
		t.Fatalf("slot %d: Done called %d times", i, calls)
	case want.done != (calls == 1):
		t.Fatalf("slot %d: done %v, the model says %v", i, calls == 1, want.done)
	case want.done && (s.state != slotFree || r.busy):
		t.Fatalf("slot %d: done but in state %d, busy %v", i, s.state, r.busy)
	case want.done && (r.Err == nil) != (want.errno == 0):
		t.Fatalf("slot %d: error %v, the model says %v", i, r.Err, want.errno)
	case want.done && want.errno != 0 && !errors.Is(r.Err, want.errno):
		t.Fatalf("slot %d: error %v, want %v", i, r.Err, want.errno)
	case want.done && want.data != nil && !bytes.Equal(r.Data, want.data):
		t.Fatalf("slot %d: read other data than the reply's", i)
	case want.answered && (s.state != slotAnswered || s.errno != want.errno):
		t.Fatalf("slot %d: state %d errno %d, the model says answered with %d", i, s.state, s.errno, want.errno)
	case !want.done && !want.answered && s.state != fuzzSlots()[i].state:
		t.Fatalf("slot %d: state %d, want it untouched (%d)", i, s.state, fuzzSlots()[i].state)
	}
}
