// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package nbd is a client of the Network Block Device protocol (the
// NetworkBlockDevice/nbd project's doc/proto.md, "The NBD protocol"): it
// backs a guest's disk with an export of a real NBD server (qemu-nbd,
// nbdkit, nbd-server) over a stream connection the caller dials.
//
// The client negotiates with fixed newstyle and NBD_OPT_GO (falling back
// to NBD_OPT_EXPORT_NAME on servers without it), uses simple replies only,
// and keeps several requests in flight on one connection, matching the
// server's replies by cookie in any order. When the connection breaks it
// dials again and re-sends every request the server has not answered, so a
// restarted server costs its callers a delay, not an error; only when no
// connection works for Config.Timeout do requests fail, with ErrTimeout.
//
// The package is platform-independent: it never dials by itself, so the
// bare-metal image hands it a dial function on gVisor's stack (gonet) and
// tests a net.Dialer.
//
// Wire format of a request (proto.md, "Request message"; integers
// big-endian):
//
//	offset  size  field
//	0       4     magic 0x25609513 (NBD_REQUEST_MAGIC)
//	4       2     command flags (NBD_CMD_FLAG_*)
//	6       2     type (NBD_CMD_*)
//	8       8     cookie
//	16      8     offset
//	24      4     length
//	28      n     data, NBD_CMD_WRITE only
//
// and of a simple reply (proto.md, "Simple reply message"):
//
//	0       4     magic 0x67446698 (NBD_SIMPLE_REPLY_MAGIC)
//	4       4     error (0, or an NBD_E* value)
//	8       8     cookie of the request
//	16      n     data, NBD_CMD_READ without error only
package nbd

import (
	"encoding/binary"
	"strconv"
	"strings"
)

// Magic numbers of the handshake (proto.md, "Newstyle negotiation" and
// "Fixed newstyle negotiation") and of the transmission phase (proto.md,
// "Request message", "Simple reply message", "Structured reply chunk
// message").
const (
	magicInit       uint64 = 0x4e42444d41474943 // "NBDMAGIC" (INIT_PASSWD)
	magicOldstyle   uint64 = 0x00420281861253   // cliserv_magic: oldstyle negotiation
	magicOpt        uint64 = 0x49484156454F5054 // "IHAVEOPT"
	magicOptReply   uint64 = 0x3e889045565a9    // option reply
	magicRequest    uint32 = 0x25609513         // NBD_REQUEST_MAGIC
	magicReply      uint32 = 0x67446698         // NBD_SIMPLE_REPLY_MAGIC
	magicStructured uint32 = 0x668e33ef         // NBD_STRUCTURED_REPLY_MAGIC (never negotiated here)
)

// Sizes on the wire and limits.
const (
	requestLen = 28 // request header
	replyLen   = 16 // simple reply header
	// optReplyLen is an option reply's header: magic, option, type, length.
	optReplyLen = 20
	// zeroesLen is the padding after NBD_OPT_EXPORT_NAME's answer unless
	// NBD_FLAG_C_NO_ZEROES was negotiated (proto.md, "Newstyle negotiation").
	zeroesLen = 124
	// maxOptReply bounds the data of one option reply the client reads:
	// strings are at most 4096 bytes (proto.md, "Conventions"), information
	// replies a few bytes.
	maxOptReply = 64 << 10
	// maxName is the longest export name (proto.md, "Conventions").
	maxName = 4096
	// MaxPayload is the largest read, write or trim the client sends: the
	// payload every server must accept (proto.md, "Size constraints").
	MaxPayload = 32 << 20
	// BlockSize is the alignment of every offset and length when the
	// server asks for no larger one (proto.md, "Size constraints": a client
	// desiring maximum interoperability uses 512).
	BlockSize = 512
	// maxMinBlock is the largest minimum block size a server may advertise
	// (proto.md, "Size constraints").
	maxMinBlock = 64 << 10
)

// handshakeFlags are the server's flags after IHAVEOPT (proto.md,
// "Handshake flags").
type handshakeFlags uint16

// Handshake flags.
const (
	flagFixedNewstyle handshakeFlags = 1 << 0 // NBD_FLAG_FIXED_NEWSTYLE
	flagNoZeroes      handshakeFlags = 1 << 1 // NBD_FLAG_NO_ZEROES
)

// clientFlags are the client's answer to the handshake flags (proto.md,
// "Client flags").
type clientFlags uint32

// Client flags.
const (
	clientFixedNewstyle clientFlags = 1 << 0 // NBD_FLAG_C_FIXED_NEWSTYLE
	clientNoZeroes      clientFlags = 1 << 1 // NBD_FLAG_C_NO_ZEROES
)

// Flags are an export's transmission flags (proto.md, "Transmission
// flags"): what the server lets the client do with it.
type Flags uint16

// Transmission flags.
const (
	FlagHasFlags        Flags = 1 << 0  // NBD_FLAG_HAS_FLAGS: always set
	FlagReadOnly        Flags = 1 << 1  // NBD_FLAG_READ_ONLY: writes and trims fail
	FlagSendFlush       Flags = 1 << 2  // NBD_FLAG_SEND_FLUSH: NBD_CMD_FLUSH is understood
	FlagSendFUA         Flags = 1 << 3  // NBD_FLAG_SEND_FUA: NBD_CMD_FLAG_FUA is understood
	FlagRotational      Flags = 1 << 4  // NBD_FLAG_ROTATIONAL: a spinning disk
	FlagSendTrim        Flags = 1 << 5  // NBD_FLAG_SEND_TRIM: NBD_CMD_TRIM is understood
	FlagSendWriteZeroes Flags = 1 << 6  // NBD_FLAG_SEND_WRITE_ZEROES (not used here)
	FlagSendDF          Flags = 1 << 7  // NBD_FLAG_SEND_DF (structured replies only)
	FlagCanMultiConn    Flags = 1 << 8  // NBD_FLAG_CAN_MULTI_CONN: flushes are visible across connections
	FlagSendResize      Flags = 1 << 9  // NBD_FLAG_SEND_RESIZE (experimental)
	FlagSendCache       Flags = 1 << 10 // NBD_FLAG_SEND_CACHE (not used here)
	FlagSendFastZero    Flags = 1 << 11 // NBD_FLAG_SEND_FAST_ZERO (not used here)
)

// String lists the flags set, e.g. "has-flags,flush,fua,trim", with the
// bit number of any flag this package does not name.
func (f Flags) String() string {
	names := [...]string{"has-flags", "read-only", "flush", "fua", "rotational", "trim",
		"write-zeroes", "df", "multi-conn", "resize", "cache", "fast-zero"}
	var parts []string
	for i := 0; i < 16; i++ {
		if f&(1<<i) == 0 {
			continue
		}
		if i < len(names) {
			parts = append(parts, names[i])
		} else {
			parts = append(parts, "bit"+strconv.Itoa(i))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// option is an option of the handshake (proto.md, "Option types").
type option uint32

// Options.
const (
	optExportName option = 1 // NBD_OPT_EXPORT_NAME
	optAbort      option = 2 // NBD_OPT_ABORT
	optGo         option = 7 // NBD_OPT_GO
)

// String names the option.
func (o option) String() string {
	switch o {
	case optExportName:
		return "NBD_OPT_EXPORT_NAME"
	case optAbort:
		return "NBD_OPT_ABORT"
	case optGo:
		return "NBD_OPT_GO"
	}
	return "option " + strconv.FormatUint(uint64(o), 10)
}

// replyType is the type of an option reply (proto.md, "Option reply
// types"); error types have bit 31 set.
type replyType uint32

// Option reply types.
const (
	repAck          replyType = 1       // NBD_REP_ACK
	repServer       replyType = 2       // NBD_REP_SERVER
	repInfo         replyType = 3       // NBD_REP_INFO
	repErr          replyType = 1 << 31 // the error bit
	repErrUnsup               = repErr + 1
	repErrPolicy              = repErr + 2
	repErrInvalid             = repErr + 3
	repErrPlatform            = repErr + 4
	repErrTLSReqd             = repErr + 5
	repErrUnknown             = repErr + 6
	repErrShutdown            = repErr + 7
	repErrBlockSize           = repErr + 8
	repErrTooBig              = repErr + 9
	repErrExtHeader           = repErr + 10
)

// String names the reply type with its meaning.
func (t replyType) String() string {
	switch t {
	case repAck:
		return "NBD_REP_ACK"
	case repServer:
		return "NBD_REP_SERVER"
	case repInfo:
		return "NBD_REP_INFO"
	case repErrUnsup:
		return "option not supported (NBD_REP_ERR_UNSUP)"
	case repErrPolicy:
		return "forbidden by the server's policy (NBD_REP_ERR_POLICY)"
	case repErrInvalid:
		return "invalid option (NBD_REP_ERR_INVALID)"
	case repErrPlatform:
		return "not supported on the server's platform (NBD_REP_ERR_PLATFORM)"
	case repErrTLSReqd:
		return "TLS required (NBD_REP_ERR_TLS_REQD)"
	case repErrUnknown:
		return "no such export (NBD_REP_ERR_UNKNOWN)"
	case repErrShutdown:
		return "server shutting down (NBD_REP_ERR_SHUTDOWN)"
	case repErrBlockSize:
		return "block size negotiation required (NBD_REP_ERR_BLOCK_SIZE_REQD)"
	case repErrTooBig:
		return "request too big (NBD_REP_ERR_TOO_BIG)"
	case repErrExtHeader:
		return "extended headers required (NBD_REP_ERR_EXT_HEADER_REQD)"
	}
	if t&repErr != 0 {
		return "error reply " + strconv.FormatUint(uint64(t&^repErr), 10)
	}
	return "reply type " + strconv.FormatUint(uint64(t), 10)
}

// infoType is the type of an NBD_REP_INFO reply and of an information
// request of NBD_OPT_GO (proto.md, "Option reply types", NBD_REP_INFO).
type infoType uint16

// Information types.
const (
	infoExport    infoType = 0 // NBD_INFO_EXPORT: size and transmission flags
	infoName      infoType = 1 // NBD_INFO_NAME
	infoDesc      infoType = 2 // NBD_INFO_DESCRIPTION
	infoBlockSize infoType = 3 // NBD_INFO_BLOCK_SIZE: size constraints
)

// Op is a request type (proto.md, "Request types").
type Op uint16

// Request types the client sends.
const (
	OpRead  Op = 0 // NBD_CMD_READ
	OpWrite Op = 1 // NBD_CMD_WRITE
	opDisc  Op = 2 // NBD_CMD_DISC: sent by Close
	OpFlush Op = 3 // NBD_CMD_FLUSH
	OpTrim  Op = 4 // NBD_CMD_TRIM
)

// String names the operation: "read", "write", "flush", "trim".
func (o Op) String() string {
	switch o {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case opDisc:
		return "disconnect"
	case OpFlush:
		return "flush"
	case OpTrim:
		return "trim"
	}
	return "op " + strconv.FormatUint(uint64(o), 10)
}

// cmdFlags are a request's command flags (proto.md, "Command flags").
type cmdFlags uint16

// Command flags.
const (
	cmdFlagFUA cmdFlags = 1 << 0 // NBD_CMD_FLAG_FUA
)

// Errno is an error value of a reply (proto.md, "Error values"): the
// server failed the request.
type Errno uint32

// Error values.
const (
	EPERM     Errno = 1   // NBD_EPERM: operation not permitted
	EIO       Errno = 5   // NBD_EIO: input/output error
	ENOMEM    Errno = 12  // NBD_ENOMEM: cannot allocate memory
	EINVAL    Errno = 22  // NBD_EINVAL: invalid argument
	ENOSPC    Errno = 28  // NBD_ENOSPC: no space left on device
	EOVERFLOW Errno = 75  // NBD_EOVERFLOW: value too large
	ENOTSUP   Errno = 95  // NBD_ENOTSUP: operation not supported
	ESHUTDOWN Errno = 108 // NBD_ESHUTDOWN: server shutting down
)

// Error names the error value, e.g. "nbd: server error EIO (input/output
// error)".
func (e Errno) Error() string {
	var s string
	switch e {
	case EPERM:
		s = "EPERM (operation not permitted)"
	case EIO:
		s = "EIO (input/output error)"
	case ENOMEM:
		s = "ENOMEM (cannot allocate memory)"
	case EINVAL:
		s = "EINVAL (invalid argument)"
	case ENOSPC:
		s = "ENOSPC (no space left on device)"
	case EOVERFLOW:
		s = "EOVERFLOW (value too large)"
	case ENOTSUP:
		s = "ENOTSUP (operation not supported)"
	case ESHUTDOWN:
		s = "ESHUTDOWN (server shutting down)"
	default:
		s = strconv.FormatUint(uint64(e), 10) + " (unknown, taken as EINVAL)"
	}
	return "nbd: server error " + s
}

// putRequest encodes a request header into b (requestLen bytes).
func putRequest(b []byte, flags cmdFlags, op Op, cookie, offset uint64, length uint32) {
	_ = b[requestLen-1]
	binary.BigEndian.PutUint32(b[0:], magicRequest)
	binary.BigEndian.PutUint16(b[4:], uint16(flags))
	binary.BigEndian.PutUint16(b[6:], uint16(op))
	binary.BigEndian.PutUint64(b[8:], cookie)
	binary.BigEndian.PutUint64(b[16:], offset)
	binary.BigEndian.PutUint32(b[24:], length)
}

// reply is a decoded simple reply header.
type reply struct {
	magic  uint32
	errno  Errno
	cookie uint64
}

// parseReply decodes a simple reply header of replyLen bytes; the caller
// checks the magic.
func parseReply(b []byte) reply {
	_ = b[replyLen-1]
	return reply{
		magic:  binary.BigEndian.Uint32(b[0:]),
		errno:  Errno(binary.BigEndian.Uint32(b[4:])),
		cookie: binary.BigEndian.Uint64(b[8:]),
	}
}
