package cluster

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/big-iron/big-iron/machine/link"
)

// KeyLen is the length of the cluster key given at boot.
const KeyLen = 32

// frameKeyInfo separates the frame key derived from the cluster key from any
// other key the project may derive from it later (RFC 5869, 3.2).
const frameKeyInfo = "big-iron cluster frame key v1"

// fingerprintInfo derives a key's fingerprint, which shows which key a
// node uses without telling anything of the key or the frame key.
const fingerprintInfo = "big-iron cluster key fingerprint v1"

// KeyFingerprint returns 16 hex digits that name a cluster key: nodes
// that show the same fingerprint share a key.
func KeyFingerprint(clusterKey []byte) string {
	k, err := hkdf.Key(sha256.New, clusterKey, nil, fingerprintInfo, 8)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%x", k)
}

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

// adStart is where a frame's associated data starts in its Ethernet
// frame: the source address, the EtherType and the cluster header are
// authenticated together (link.HeaderLen-8 up to the payload), so that a
// copy of a fresh frame with its Ethernet source rewritten fails to open
// instead of moving the peer's address.
const adStart = link.HeaderLen - 8

// Seal encodes h and seals the Ethernet frame in f, whose Ethernet
// header (source address and EtherType set) comes first and whose
// payload is already at f[link.HeaderLen+HeaderLen:][:h.PayloadLen]; f
// must have room for the tag. It returns the sealed Ethernet frame.
func (c *Cipher) Seal(f []byte, h *Header) ([]byte, error) {
	n := int(h.PayloadLen)
	if len(f) < link.HeaderLen+FrameLen(n) {
		return nil, ErrBufSmall
	}
	b := f[link.HeaderLen:]
	h.Put(b)
	nonce(&c.sealNonce, h.Src, h.Counter)
	pt := b[HeaderLen : HeaderLen+n]
	c.aead.Seal(pt[:0], c.sealNonce[:], pt, f[adStart:link.HeaderLen+HeaderLen])
	return f[:link.HeaderLen+FrameLen(n)], nil
}

// Open parses, authenticates and decrypts, in place, the cluster frame in
// the Ethernet frame f. It returns the header and the plaintext payload,
// which aliases f.
func (c *Cipher) Open(f []byte) (Header, []byte, error) {
	if len(f) < link.HeaderLen {
		return Header{}, nil, ErrShort
	}
	h, err := ParseHeader(f[link.HeaderLen:])
	if err != nil {
		return h, nil, err
	}
	return c.openParsed(f, &h)
}

// openParsed authenticates the Ethernet frame f whose cluster header was
// already parsed.
func (c *Cipher) openParsed(f []byte, h *Header) (Header, []byte, error) {
	n := int(h.PayloadLen)
	nonce(&c.openNonce, h.Src, h.Counter)
	b := f[link.HeaderLen:]
	ct := b[HeaderLen : HeaderLen+n+TagLen]
	pt, err := c.aead.Open(ct[:0], c.openNonce[:], ct, f[adStart:link.HeaderLen+HeaderLen])
	if err != nil {
		return *h, nil, ErrAuth
	}
	return *h, pt, nil
}
