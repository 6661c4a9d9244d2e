package cluster

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// KeyLen is the length of the cluster key given at boot.
const KeyLen = 32

// frameKeyInfo separates the frame key derived from the cluster key from any
// other key the project may derive from it later (RFC 5869, 3.2).
const frameKeyInfo = "big-iron cluster frame key v1"

// Cipher seals and opens cluster frames with AES-256-GCM (NIST SP 800-38D)
// under a key derived from the cluster key with HKDF-SHA256 (RFC 5869).
// A Cipher is not safe for concurrent use: it keeps its nonce buffers inside
// so that sealing and opening allocate nothing.
type Cipher struct {
	aead      cipher.AEAD
	sealNonce [NonceLen]byte
	openNonce [NonceLen]byte
}

// NewCipher derives the frame key from a KeyLen-byte cluster key.
func NewCipher(clusterKey []byte) (*Cipher, error) {
	if len(clusterKey) != KeyLen {
		return nil, fmt.Errorf("cluster: key is %d bytes, want %d", len(clusterKey), KeyLen)
	}
	k, err := hkdf.Key(sha256.New, clusterKey, nil, frameKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("cluster: derive frame key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("cluster: frame cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("cluster: frame AEAD: %w", err)
	}
	if aead.Overhead() != TagLen || aead.NonceSize() != NonceLen {
		return nil, fmt.Errorf("cluster: AEAD has tag %d nonce %d, want %d and %d",
			aead.Overhead(), aead.NonceSize(), TagLen, NonceLen)
	}
	return &Cipher{aead: aead}, nil
}

// nonce builds the per-frame nonce: sender id then the sender's counter.
func nonce(n *[NonceLen]byte, src NodeID, counter uint64) {
	binary.BigEndian.PutUint32(n[0:], uint32(src))
	binary.BigEndian.PutUint64(n[4:], counter)
}

// Seal encodes h and seals a frame in b, which holds the payload already at
// b[HeaderLen:HeaderLen+h.PayloadLen] and must have room for the tag. It
// returns the sealed frame b[:FrameLen(payload)].
func (c *Cipher) Seal(b []byte, h *Header) ([]byte, error) {
	n := int(h.PayloadLen)
	if len(b) < FrameLen(n) {
		return nil, ErrBufSmall
	}
	h.Put(b)
	nonce(&c.sealNonce, h.Src, h.Counter)
	pt := b[HeaderLen : HeaderLen+n]
	c.aead.Seal(pt[:0], c.sealNonce[:], pt, b[:HeaderLen])
	return b[:FrameLen(n)], nil
}

// Open parses, authenticates and decrypts, in place, the cluster frame in b
// (the bytes after the Ethernet header). It returns the header and the
// plaintext payload, which aliases b.
func (c *Cipher) Open(b []byte) (Header, []byte, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, nil, err
	}
	return c.openParsed(b, &h)
}

// openParsed authenticates a frame whose header was already parsed.
func (c *Cipher) openParsed(b []byte, h *Header) (Header, []byte, error) {
	n := int(h.PayloadLen)
	nonce(&c.openNonce, h.Src, h.Counter)
	ct := b[HeaderLen : HeaderLen+n+TagLen]
	pt, err := c.aead.Open(ct[:0], c.openNonce[:], ct, b[:HeaderLen])
	if err != nil {
		return *h, nil, ErrAuth
	}
	return *h, pt, nil
}
