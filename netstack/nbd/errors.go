// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nbd

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Errors a request completes with, wrapped with what the request was
// ("nbd: write of 4096 bytes at 8192: ..."); test them with errors.Is.
// A server's own failure of a request wraps an Errno instead.
var (
	// ErrTimeout: no connection to the server worked for Config.Timeout.
	ErrTimeout = errors.New("nbd: no working connection to the server before the timeout")
	// ErrClosed: the client was closed before the request was answered.
	ErrClosed = errors.New("nbd: client closed")
	// ErrInvalid: the request is malformed (unknown operation, zero
	// length, data on a trim or flush, FUA on a read).
	ErrInvalid = errors.New("nbd: invalid request")
	// ErrUnaligned: the offset or length is not a multiple of the
	// export's block size (Info.MinBlock, at least BlockSize).
	ErrUnaligned = errors.New("nbd: offset or length not a multiple of the block size")
	// ErrTooLarge: the request is longer than Info.MaxPayload.
	ErrTooLarge = errors.New("nbd: request longer than the maximum payload")
	// ErrOutOfRange: the request reaches past the end of the export (which
	// may have shrunk when the client reconnected).
	ErrOutOfRange = errors.New("nbd: request beyond the end of the export")
	// ErrReadOnly: a write or trim on an export the server marks read-only.
	ErrReadOnly = errors.New("nbd: export is read-only")
	// ErrUnsupported: a flush, trim or FUA write the server does not offer
	// (NBD_FLAG_SEND_FLUSH, NBD_FLAG_SEND_TRIM, NBD_FLAG_SEND_FUA).
	ErrUnsupported = errors.New("nbd: operation not offered by the server")
	// ErrUnknownExport: the server has no export of that name
	// (NBD_REP_ERR_UNKNOWN); an *OptionError carries it.
	ErrUnknownExport = errors.New("nbd: no such export on the server")
	// ErrProtocol: the server broke the protocol (a bad magic number, an
	// unknown cookie, a malformed option reply). The client drops the
	// connection and dials again.
	ErrProtocol = errors.New("nbd: protocol violation by the server")
)

// OptionError is the server's refusal of an option during the handshake
// (proto.md, "Option reply types": the error replies).
type OptionError struct {
	// Option is the option refused, e.g. "NBD_OPT_GO".
	Option string
	// Export is the export name the client asked for.
	Export string
	// Reply is the error reply type (NBD_REP_ERR_*, bit 31 set).
	Reply uint32
	// Message is the server's explanation, if it sent one, with control
	// characters removed.
	Message string
}

// Error says which option for which export was refused and why.
func (e *OptionError) Error() string {
	s := fmt.Sprintf("nbd: server refused %s for export %q: %v", e.Option, e.Export, replyType(e.Reply))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is makes errors.Is(err, ErrUnknownExport) true for NBD_REP_ERR_UNKNOWN.
func (e *OptionError) Is(target error) bool {
	return target == ErrUnknownExport && replyType(e.Reply) == repErrUnknown
}

// cleanMessage makes a server's message safe to print: printable
// characters only, at most 512 bytes.
func cleanMessage(b []byte) string {
	const maxLen = 512
	s := strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, string(b))
	if len(s) > maxLen {
		n := maxLen
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "..."
	}
	return strings.TrimSpace(s)
}

// protoErr is an ErrProtocol with the detail of what the server sent.
func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}
