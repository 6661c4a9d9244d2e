// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nbd

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestHandshakeStreams runs the handshake against canned server streams,
// in reads of 3 bytes: what it opens, and how clearly it says no.
func TestHandshakeStreams(t *testing.T) {
	both := flagFixedNewstyle | flagNoZeroes
	fl := FlagHasFlags | FlagSendFlush
	ack := optReply(optGo, repAck, nil)
	for _, tc := range []struct {
		name    string
		stream  []byte
		want    Info   // when err is ""
		err     string // a part of the error
		is      error
		options []option // what the client sent
	}{
		{"go", join(greeting(both), infoExportReply(1<<30, fl), ack),
			Info{Size: 1 << 30, Flags: fl, MinBlock: 512, MaxPayload: MaxPayload}, "", nil, []option{optGo}},
		{"go, block sizes, unknown info", join(greeting(both), infoBlockReply(1, 4096, 1<<30), optReply(optGo, repInfo, []byte{0, 9, 1}),
			infoExportReply(8192, fl), ack),
			Info{Size: 8192, Flags: fl, MinBlock: 512, PreferredBlock: 4096, MaxPayload: MaxPayload}, "", nil, []option{optGo}},
		{"go, small maximum payload", join(greeting(both), infoBlockReply(4096, 4096, 10000), infoExportReply(1<<20, fl), ack),
			Info{Size: 1 << 20, Flags: fl, MinBlock: 4096, PreferredBlock: 4096, MaxPayload: 8192}, "", nil, []option{optGo}},
		{"go unsupported", join(greeting(both), optReply(optGo, repErrUnsup, nil), exportAnswer(1<<20, fl, false)),
			Info{Size: 1 << 20, Flags: fl, MinBlock: 512, MaxPayload: MaxPayload, Fallback: true}, "", nil, []option{optGo, optExportName}},
		{"plain newstyle with zeroes", join(greeting(0), exportAnswer(1<<20, fl, true)),
			Info{Size: 1 << 20, Flags: fl, MinBlock: 512, MaxPayload: MaxPayload, Fallback: true}, "", nil, []option{optExportName}},
		{"unknown export", join(greeting(both), optReply(optGo, repErrUnknown, []byte("what is\x00 disk?"))),
			Info{}, `refused NBD_OPT_GO for export "disk": no such export (NBD_REP_ERR_UNKNOWN): what is disk?`, ErrUnknownExport, []option{optGo, optAbort}},
		{"policy", join(greeting(both), optReply(optGo, repErrPolicy, nil)),
			Info{}, "forbidden by the server's policy (NBD_REP_ERR_POLICY)", nil, []option{optGo, optAbort}},
		{"TLS required", join(greeting(both), optReply(optGo, repErrTLSReqd, nil)),
			Info{}, "TLS required", nil, []option{optGo, optAbort}},
		{"shutting down", join(greeting(both), infoExportReply(1, fl), optReply(optGo, repErrShutdown, nil)),
			Info{}, "shutting down (NBD_REP_ERR_SHUTDOWN)", nil, []option{optGo, optAbort}},
		{"unknown error", join(greeting(both), optReply(optGo, repErr+99, nil)),
			Info{}, "error reply 99", nil, []option{optGo, optAbort}},
		{"no NBD_INFO_EXPORT", join(greeting(both), ack),
			Info{}, "acknowledged without NBD_INFO_EXPORT", ErrProtocol, []option{optGo}},
		{"short NBD_INFO_EXPORT", join(greeting(both), optReply(optGo, repInfo, []byte{0, 0, 1})),
			Info{}, "NBD_INFO_EXPORT of 3 bytes", ErrProtocol, []option{optGo}},
		{"block size not a power of 2", join(greeting(both), infoBlockReply(1000, 4096, 1<<20)),
			Info{}, "minimum block size 1000", ErrProtocol, []option{optGo}},
		{"maximum payload below the block", join(greeting(both), infoBlockReply(4096, 4096, 2048)),
			Info{}, "maximum payload 2048 is below the block size 4096", ErrProtocol, []option{optGo}},
		{"reply to another option", join(greeting(both), optReply(optExportName, repAck, nil)),
			Info{}, "reply to NBD_OPT_EXPORT_NAME while the client asked NBD_OPT_GO", ErrProtocol, []option{optGo}},
		{"huge reply", join(greeting(both), optReply(optGo, repInfo, make([]byte, maxOptReply+1))),
			Info{}, "carries 65537 bytes", ErrProtocol, []option{optGo}},
		{"NBD_REP_SERVER to NBD_OPT_GO", join(greeting(both), optReply(optGo, repServer, nil)),
			Info{}, "reply NBD_REP_SERVER to NBD_OPT_GO", ErrProtocol, []option{optGo}},
		{"export name refused", join(greeting(both), optReply(optGo, repErrUnsup, nil)),
			Info{}, `reading the answer to NBD_OPT_EXPORT_NAME "disk" (no such export, or the server refused the client?): the server closed the connection`, nil,
			[]option{optGo, optExportName}},
		{"oldstyle", join(binary.BigEndian.AppendUint64(nil, magicInit), binary.BigEndian.AppendUint64(nil, magicOldstyle), make([]byte, 140)),
			Info{}, "oldstyle negotiation", ErrProtocol, nil},
		{"not NBD", []byte("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
			Info{}, "not an NBD server", ErrProtocol, nil},
		{"nothing", nil,
			Info{}, "reading the server's greeting: the server closed the connection: EOF", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rw := &fuzzConn{in: tc.stream, chunk: 3}
			info, err := handshake(rw, "disk")
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.err == "" && info != tc.want:
				t.Errorf("info %+v, want %+v", info, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want one saying %q", err, tc.err)
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "nbd: ") {
				t.Errorf("error %q without the package's prefix", err)
			}
			if got := sentOptions(t, rw.out.Bytes()); !equalOptions(got, tc.options) {
				t.Errorf("client sent %v, want %v", got, tc.options)
			}
		})
	}
}

// sentOptions lists the options in a client's handshake messages.
func sentOptions(t *testing.T, out []byte) []option {
	if len(out) < 4 {
		return nil
	}
	var opts []option
	for out = out[4:]; len(out) >= 16; {
		opts = append(opts, option(binary.BigEndian.Uint32(out[8:])))
		n := binary.BigEndian.Uint32(out[12:])
		if uint32(len(out)-16) < n {
			t.Fatalf("option of %d bytes with %d written", n, len(out)-16)
		}
		out = out[16+n:]
	}
	return opts
}

func equalOptions(a, b []option) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFlagsString(t *testing.T) {
	if got := (FlagHasFlags | FlagReadOnly | FlagSendTrim | FlagCanMultiConn | 1<<15).String(); got != "has-flags,read-only,trim,multi-conn,bit15" {
		t.Errorf("Flags.String() = %q", got)
	}
	if got := Flags(0).String(); got != "none" {
		t.Errorf("Flags(0).String() = %q", got)
	}
	if got := EIO.Error(); got != "nbd: server error EIO (input/output error)" {
		t.Errorf("EIO.Error() = %q", got)
	}
	if got := Errno(1234).Error(); !strings.Contains(got, "1234") {
		t.Errorf("Errno(1234).Error() = %q", got)
	}
	for s, want := range map[State]string{StateConnecting: "connecting", StateConnected: "connected",
		StateReconnecting: "reconnecting", StateFailed: "failed", StateClosed: "closed"} {
		if s.String() != want {
			t.Errorf("State %d: %q, want %q", s, s.String(), want)
		}
	}
}

func TestLatencyBuckets(t *testing.T) {
	var l Latency
	for _, d := range []int64{50e3, 100e3, 5e6, 2e9, 20e9} { // ns
		l.add(time.Duration(d))
	}
	want := [LatencyBuckets]uint64{1, 1, 1, 0, 0, 1, 1}
	if l.Buckets != want || l.Count != 5 || l.Max != time.Duration(20e9) {
		t.Errorf("latency %+v, buckets want %v", l, want)
	}
	if LatencyBound(0) != time.Duration(100e3) || LatencyBound(5) != time.Duration(10e9) || LatencyBound(6) >= 0 {
		t.Errorf("bounds %v %v %v", LatencyBound(0), LatencyBound(5), LatencyBound(6))
	}
}
