// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package nbd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Info describes the export a handshake opened.
type Info struct {
	// Size is the export's size in bytes.
	Size uint64
	// Flags are its transmission flags.
	Flags Flags
	// MinBlock is the alignment of every offset and length: the server's
	// minimum block size, and at least BlockSize.
	MinBlock uint32
	// PreferredBlock is the server's preferred block size, 0 if it named
	// none.
	PreferredBlock uint32
	// MaxPayload is the longest request the client sends: the server's
	// maximum payload, at most the package's MaxPayload, a multiple of
	// MinBlock.
	MaxPayload uint32
	// Fallback is true when the server refused NBD_OPT_GO (or offered no
	// fixed newstyle) and NBD_OPT_EXPORT_NAME opened the export.
	Fallback bool
}

// errGoUnsupported is the server's NBD_REP_ERR_UNSUP to NBD_OPT_GO: the
// client falls back to NBD_OPT_EXPORT_NAME.
var errGoUnsupported = errors.New("nbd: server does not support NBD_OPT_GO")

// handshake runs the newstyle negotiation (proto.md, "Newstyle
// negotiation", "Fixed newstyle negotiation") on rw for the named export
// and returns what the server said of it. rw is then in the transmission
// phase. On a server's refusal it sends NBD_OPT_ABORT (a soft disconnect)
// and returns an *OptionError; the caller closes the connection.
func handshake(rw io.ReadWriter, export string) (Info, error) {
	if len(export) > maxName {
		return Info{}, fmt.Errorf("nbd: export name of %d bytes is longer than %d", len(export), maxName)
	}
	var b [18]byte
	if _, err := io.ReadFull(rw, b[:]); err != nil {
		return Info{}, fmt.Errorf("nbd: reading the server's greeting: %w", closedErr(err))
	}
	if m := binary.BigEndian.Uint64(b[0:]); m != magicInit {
		return Info{}, protoErr("greeting magic %#016x is not NBDMAGIC: not an NBD server", m)
	}
	switch m := binary.BigEndian.Uint64(b[8:]); m {
	case magicOpt:
	case magicOldstyle:
		return Info{}, fmt.Errorf("nbd: the server speaks the oldstyle negotiation, which this client does not: %w", ErrProtocol)
	default:
		return Info{}, protoErr("greeting magic %#016x is neither IHAVEOPT nor oldstyle", m)
	}
	hf := handshakeFlags(binary.BigEndian.Uint16(b[16:]))
	var cf clientFlags
	if hf&flagFixedNewstyle != 0 {
		cf |= clientFixedNewstyle
	}
	if hf&flagNoZeroes != 0 {
		cf |= clientNoZeroes
	}
	if _, err := rw.Write(binary.BigEndian.AppendUint32(nil, uint32(cf))); err != nil {
		return Info{}, fmt.Errorf("nbd: sending the client flags: %w", err)
	}
	if cf&clientFixedNewstyle != 0 {
		info, err := optionGo(rw, export)
		if !errors.Is(err, errGoUnsupported) {
			return info, err
		}
	}
	return exportName(rw, export, cf&clientNoZeroes != 0)
}

// closedErr makes an end of stream in the middle of a message read as the
// server closing the connection.
func closedErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("the server closed the connection: %w", err)
	}
	return err
}

// appendOption appends an option request's header (proto.md, "Newstyle
// negotiation": IHAVEOPT, option, length of its data).
func appendOption(b []byte, o option, dataLen int) []byte {
	b = binary.BigEndian.AppendUint64(b, magicOpt)
	b = binary.BigEndian.AppendUint32(b, uint32(o))
	return binary.BigEndian.AppendUint32(b, uint32(dataLen))
}

// optionGo sends NBD_OPT_GO for export asking for NBD_INFO_BLOCK_SIZE
// (proto.md, "Option types", NBD_OPT_INFO and NBD_OPT_GO) and reads the
// replies up to the final one.
func optionGo(rw io.ReadWriter, export string) (Info, error) {
	b := appendOption(nil, optGo, 4+len(export)+2+2)
	b = binary.BigEndian.AppendUint32(b, uint32(len(export)))
	b = append(b, export...)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(infoBlockSize))
	if _, err := rw.Write(b); err != nil {
		return Info{}, fmt.Errorf("nbd: sending NBD_OPT_GO: %w", err)
	}
	info := Info{MinBlock: BlockSize, MaxPayload: MaxPayload}
	haveExport := false
	for {
		t, data, err := readOptionReply(rw, optGo)
		if err != nil {
			return Info{}, err
		}
		switch {
		case t == repInfo:
			got, err := parseInfo(data, &info)
			if err != nil {
				return Info{}, err
			}
			haveExport = haveExport || got == infoExport
		case t == repAck:
			if !haveExport {
				return Info{}, protoErr("NBD_OPT_GO acknowledged without NBD_INFO_EXPORT")
			}
			return info, nil
		case t == repErrUnsup:
			return Info{}, errGoUnsupported
		case t&repErr != 0:
			abort(rw)
			return Info{}, &OptionError{Option: optGo.String(), Export: export, Reply: uint32(t), Message: cleanMessage(data)}
		default:
			return Info{}, protoErr("reply %v to NBD_OPT_GO", t)
		}
	}
}

// abort sends NBD_OPT_ABORT, the soft disconnect a client owes the server
// when it gives up the negotiation (proto.md, "Termination of the session
// during option haggling"). It does not wait for the reply.
func abort(w io.Writer) {
	_, _ = w.Write(appendOption(nil, optAbort, 0))
}

// readOptionReply reads one option reply (proto.md, "Fixed newstyle
// negotiation") to option o and returns its type and data.
func readOptionReply(r io.Reader, o option) (replyType, []byte, error) {
	var h [optReplyLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, fmt.Errorf("nbd: reading the reply to %v: %w", o, closedErr(err))
	}
	if m := binary.BigEndian.Uint64(h[0:]); m != magicOptReply {
		return 0, nil, protoErr("option reply magic %#x", m)
	}
	if got := option(binary.BigEndian.Uint32(h[8:])); got != o {
		return 0, nil, protoErr("reply to %v while the client asked %v", got, o)
	}
	t := replyType(binary.BigEndian.Uint32(h[12:]))
	n := binary.BigEndian.Uint32(h[16:])
	if n > maxOptReply {
		return 0, nil, protoErr("%v reply to %v carries %d bytes (at most %d)", t, o, n, maxOptReply)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return 0, nil, fmt.Errorf("nbd: reading %d bytes of the reply to %v: %w", n, o, closedErr(err))
	}
	return t, data, nil
}

// parseInfo takes an NBD_REP_INFO reply's data into info and returns its
// information type (proto.md, "Option reply types", NBD_REP_INFO).
// Information types the client does not know are ignored.
func parseInfo(data []byte, info *Info) (infoType, error) {
	if len(data) < 2 {
		return 0, protoErr("NBD_REP_INFO of %d bytes", len(data))
	}
	t := infoType(binary.BigEndian.Uint16(data))
	switch t {
	case infoExport:
		if len(data) != 12 {
			return t, protoErr("NBD_INFO_EXPORT of %d bytes, not 12", len(data))
		}
		info.Size = binary.BigEndian.Uint64(data[2:])
		info.Flags = Flags(binary.BigEndian.Uint16(data[10:]))
	case infoBlockSize:
		if len(data) != 14 {
			return t, protoErr("NBD_INFO_BLOCK_SIZE of %d bytes, not 14", len(data))
		}
		err := setBlockSizes(info, binary.BigEndian.Uint32(data[2:]),
			binary.BigEndian.Uint32(data[6:]), binary.BigEndian.Uint32(data[10:]))
		if err != nil {
			return t, err
		}
	}
	return t, nil
}

// setBlockSizes checks the size constraints of NBD_INFO_BLOCK_SIZE
// (proto.md, "Size constraints") and sets info's from them: the client
// never goes below BlockSize nor above MaxPayload.
func setBlockSizes(info *Info, minimum, preferred, maximum uint32) error {
	if minimum == 0 || bits.OnesCount32(minimum) != 1 || minimum > maxMinBlock {
		return protoErr("minimum block size %d is not a power of 2 up to %d", minimum, maxMinBlock)
	}
	info.MinBlock = max(minimum, BlockSize)
	info.PreferredBlock = 0
	if bits.OnesCount32(preferred) == 1 && preferred >= info.MinBlock {
		info.PreferredBlock = preferred
	}
	limit := min(maximum, MaxPayload)
	limit -= limit % info.MinBlock
	if limit == 0 {
		return protoErr("maximum payload %d is below the block size %d", maximum, info.MinBlock)
	}
	info.MaxPayload = limit
	return nil
}

// exportName opens the export with NBD_OPT_EXPORT_NAME (proto.md,
// "Option types"): the server answers with the export's size and flags,
// or closes the connection.
func exportName(rw io.ReadWriter, export string, noZeroes bool) (Info, error) {
	b := appendOption(nil, optExportName, len(export))
	b = append(b, export...)
	if _, err := rw.Write(b); err != nil {
		return Info{}, fmt.Errorf("nbd: sending NBD_OPT_EXPORT_NAME: %w", err)
	}
	n := 10
	if !noZeroes {
		n += zeroesLen
	}
	a := make([]byte, n)
	if _, err := io.ReadFull(rw, a); err != nil {
		return Info{}, fmt.Errorf("nbd: reading the answer to NBD_OPT_EXPORT_NAME %q (no such export, or the server refused the client?): %w",
			export, closedErr(err))
	}
	return Info{
		Size:       binary.BigEndian.Uint64(a),
		Flags:      Flags(binary.BigEndian.Uint16(a[8:])),
		MinBlock:   BlockSize,
		MaxPayload: MaxPayload,
		Fallback:   true,
	}, nil
}
