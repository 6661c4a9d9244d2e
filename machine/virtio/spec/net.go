// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package spec

// Network device virtqueues (5.1.2 "Virtqueues"): without
// VIRTIO_NET_F_MQ and VIRTIO_NET_F_CTRL_VQ, receiveq1 and transmitq1.
const (
	NetQueueRx = 0
	NetQueueTx = 1
)

// Network device feature bits (5.1.3 "Feature bits"), as masks of the
// 64-bit feature word.
const (
	// NetFeatureCSUM is VIRTIO_NET_F_CSUM: the device completes
	// checksums the driver leaves partial.
	NetFeatureCSUM uint64 = 1 << 0
	// NetFeatureGuestCSUM is VIRTIO_NET_F_GUEST_CSUM: the driver takes
	// packets with partial checksums.
	NetFeatureGuestCSUM uint64 = 1 << 1
	// NetFeatureMTU is VIRTIO_NET_F_MTU: the mtu configuration field is
	// valid.
	NetFeatureMTU uint64 = 1 << 3
	// NetFeatureMAC is VIRTIO_NET_F_MAC: the mac configuration field is
	// the device's address.
	NetFeatureMAC uint64 = 1 << 5
	// NetFeatureHostTSO4 is VIRTIO_NET_F_HOST_TSO4: the device segments
	// TCP over IPv4 packets larger than the MTU (gso_type TCPV4).
	NetFeatureHostTSO4 uint64 = 1 << 11
	// NetFeatureHostTSO6 is VIRTIO_NET_F_HOST_TSO6: the same for TCP
	// over IPv6 (gso_type TCPV6).
	NetFeatureHostTSO6 uint64 = 1 << 12
	// NetFeatureMergeRxBuf is VIRTIO_NET_F_MRG_RXBUF: the device may
	// spread a received packet over several receive buffers.
	NetFeatureMergeRxBuf uint64 = 1 << 15
	// NetFeatureStatus is VIRTIO_NET_F_STATUS: the status configuration
	// field is valid.
	NetFeatureStatus uint64 = 1 << 16
)

// Network device configuration layout (5.1.4 "Device configuration
// layout", struct virtio_net_config): byte offsets, little-endian fields.
const (
	NetConfigMAC      uint64 = 0  // u8 mac[6]
	NetConfigStatus   uint64 = 6  // le16 status
	NetConfigMaxPairs uint64 = 8  // le16 max_virtqueue_pairs
	NetConfigMTU      uint64 = 10 // le16 mtu
	NetConfigSize     uint64 = 12 // the fields up to mtu
	NetStatusLinkUp   uint16 = 1  // VIRTIO_NET_S_LINK_UP in status
)

// The mtu a device may offer (5.1.4.1 "Device Requirements: Device
// configuration layout": between 68 and 65535).
const (
	NetMTUMin int = 68
	NetMTUMax int = 0xFFFF
)

// struct virtio_net_hdr (5.1.6 "Device Operation"): the header before
// every packet in both directions. With VIRTIO_F_VERSION_1 it always has
// num_buffers, whether VIRTIO_NET_F_MRG_RXBUF is negotiated or not.
const (
	NetHdrLen        int = 12 // bytes, num_buffers included
	NetHdrFlags      int = 0  // u8 flags
	NetHdrGSOType    int = 1  // u8 gso_type
	NetHdrHdrLen     int = 2  // le16 hdr_len
	NetHdrGSOSize    int = 4  // le16 gso_size
	NetHdrCsumStart  int = 6  // le16 csum_start
	NetHdrCsumOffset int = 8  // le16 csum_offset
	NetHdrNumBuffers int = 10 // le16 num_buffers
)

// Header flags and GSO types (5.1.6).
const (
	// NetHdrNeedsCsum is VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum from
	// csum_start to the end is partial, to be stored at
	// csum_start+csum_offset.
	NetHdrNeedsCsum uint8 = 1
	// NetHdrDataValid is VIRTIO_NET_HDR_F_DATA_VALID: the device checked
	// the packet's checksum (receive only).
	NetHdrDataValid uint8 = 2
	// NetGSONone is VIRTIO_NET_HDR_GSO_NONE: no segmentation offload.
	NetGSONone uint8 = 0
	// NetGSOTCPv4 is VIRTIO_NET_HDR_GSO_TCPV4: segment as TCP over IPv4
	// into gso_size bytes of payload each.
	NetGSOTCPv4 uint8 = 1
	// NetGSOTCPv6 is VIRTIO_NET_HDR_GSO_TCPV6: the same over IPv6.
	NetGSOTCPv6 uint8 = 4
	// NetGSOECN is VIRTIO_NET_HDR_GSO_ECN, or'ed into gso_type: the
	// packet has ECN's CWR set (needs VIRTIO_NET_F_HOST_ECN).
	NetGSOECN uint8 = 0x80
)
