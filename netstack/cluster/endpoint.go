package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/big-iron/big-iron/machine/link"
)

// Defaults for Config fields left zero.
const (
	DefaultChannels   = 4
	DefaultWindow     = 64
	DefaultMaxMessage = 64 << 10
	DefaultMinRTO     = 2 * time.Millisecond
	DefaultMaxRTO     = 2 * time.Second
	DefaultInitialRTO = 20 * time.Millisecond
	// MaxWindow is the largest receive window: the selective-ack bitmap
	// covers 64 frames after the cumulative ack.
	MaxWindow = 64
	// helloPrefix is the part of a hello payload the endpoint owns: the
	// sender's incarnation (its CounterBase).
	helloPrefix = 8
)

// Handler receives a complete message from a reliable channel. msg is valid
// only during the call.
type Handler func(from NodeID, channel uint8, msg []byte)

// DatagramHandler receives an unreliable datagram. msg is valid only during
// the call.
type DatagramHandler func(from NodeID, msg []byte)

// HelloHandler receives a hello from any node holding the cluster key, peer
// or not. payload is valid only during the call.
type HelloHandler func(from NodeID, mac link.MAC, payload []byte)

// Config configures an Endpoint.
type Config struct {
	// ID is this node's id; it must not be zero.
	ID NodeID
	// Key is the KeyLen-byte cluster key given at boot.
	Key []byte
	// Link is the Ethernet port. NewEndpoint installs its receiver.
	Link link.Link
	// Clock returns monotonic time. It is read on every received frame and
	// every Tick, so tests can drive the endpoint with virtual time.
	Clock func() time.Duration
	// CounterBase is this incarnation's starting frame counter. Frame
	// counters are AEAD nonces under a key shared by the whole cluster, so
	// they must never repeat for the same ID and key: a rebooted node must
	// start above every counter it used before (for example a boot count,
	// or seconds of a real-time clock, shifted left 32 bits). Peers also use
	// it to notice that a node restarted and drop frames of its earlier life.
	CounterBase uint64
	// Channels is the number of reliable channels per peer (at most 256).
	Channels int
	// Window is the receive window in frames (at most MaxWindow).
	Window int
	// MaxMessage is the largest message Send accepts.
	MaxMessage int
	// SendQueue is the number of frames that may be queued per channel,
	// sent or not; 0 means Window plus the fragments of one MaxMessage.
	SendQueue int
	// firstSeq is the sequence number every channel starts at: 0 on the
	// wire; tests start near the 2^32 wrap and the 2^31 half-range.
	firstSeq uint32
	// MinRTO, MaxRTO and InitialRTO bound the retransmission timeout.
	MinRTO, MaxRTO, InitialRTO time.Duration
	// AckDelay delays a bare acknowledgement (RFC 1122, 4.2.3.2) so that
	// it can ride on the next data frame to the peer, as a reply or the
	// next request usually is: a bare acknowledgement is sent once
	// AckDelay has passed since the first frame it covers arrived, or
	// at once when AckEvery in-order frames wait for one. Zero sends one
	// at the next Tick or Flush, and after every second frame. On a link
	// that takes frames in slowly (an emulator's NIC polled once per
	// millisecond) every frame saved counts.
	AckDelay time.Duration
	// AckEvery is the number of in-order frames that force an
	// acknowledgement; 0 means 2.
	AckEvery int
	// OnMessage, OnDatagram and OnHello receive traffic; any may be nil.
	OnMessage Handler
	// Room reports whether OnMessage can take one more message from
	// peer from on channel ch now; nil means always. It is asked before
	// the first fragment of each message is taken in. While it says no,
	// the message's frames stay in the channel's receive ring,
	// unacknowledged, the channel advertises a window of zero, so the
	// peer sends nothing new on it (its sends queue up and then return
	// ErrBusy), and the frame it retransmits probes the window. Tick asks
	// again and, once there is room, delivers what waited and reopens the
	// window with an acknowledgement. This is the transport's
	// back-pressure: the receiver bounds its queues without dropping or
	// refusing a message. Room is called with the endpoint's caller
	// serialization held and must not call the Endpoint.
	Room       func(from NodeID, ch uint8) bool
	OnDatagram DatagramHandler
	OnHello    HelloHandler
}

// Errors returned by Endpoint methods. The send path returns them unwrapped
// so that it never allocates.
var (
	ErrUnknownPeer = errors.New("cluster: unknown peer")
	ErrBusy        = errors.New("cluster: send queue full")
	ErrMsgTooLong  = errors.New("cluster: message longer than MaxMessage")
	ErrChannel     = errors.New("cluster: channel out of range")
)

// Drops counts received frames dropped, by reason.
type Drops struct {
	Short, Version, Type, Flags, Length, Fragment, Source uint64 // malformed header
	EtherType                                             uint64 // not the cluster EtherType
	NotForUs                                              uint64 // addressed to another node
	OwnID                                                 uint64 // claims to come from this node's id
	UnknownPeer                                           uint64 // non-hello frame from a node that is not a peer
	BadTag                                                uint64 // failed authentication
	Replay                                                uint64 // frame counter already seen or too old
	Stale                                                 uint64 // from an earlier incarnation of the peer
	Channel                                               uint64 // channel number out of range
	OutOfWindow                                           uint64 // data beyond the receive window
	Reassembly                                            uint64 // fragments out of sequence or message too long
	BadAck                                                uint64 // acknowledges data never sent
	Busy                                                  uint64 // a hello from a non-peer beyond the budget of opens per tick
}

// Stats are the endpoint's counters.
type Stats struct {
	Drops
	TransmitErrors uint64
	// Closed counts the times a channel's receive window closed because
	// Room said the receiver had no room (back-pressure, not a drop).
	Closed uint64
}

// PeerStats describes traffic with one peer.
type PeerStats struct {
	ID                  NodeID
	MAC                 link.MAC
	FramesIn, BytesIn   uint64
	FramesOut, BytesOut uint64
	MessagesIn          uint64
	MessagesOut         uint64
	Retransmits         uint64
	Duplicates          uint64
	SRTT, RTTVar, RTO   time.Duration
	LastHeard           time.Duration
	// LongestSilence is the longest time between two authenticated
	// frames from the peer (the wait for its first, while it boots, does
	// not count): how long a live peer has gone unheard, to set a loss
	// timeout against.
	LongestSilence time.Duration
}

// sendSlot is one queued frame of an outgoing message.
type sendSlot struct {
	buf       []byte
	n         int
	fragIndex uint16
	fragCount uint16
	firstSent time.Duration
	lastSent  time.Duration
	sends     int
	sacked    bool
}

// recvSlot is one out-of-order frame waiting for its predecessors.
type recvSlot struct {
	buf       []byte
	n         int
	fragIndex uint16
	fragCount uint16
	present   bool
}

// channel is the state of one reliable channel with one peer.
type channel struct {
	// Send side: sequence numbers [una, nxt) are in flight, [nxt, end)
	// queued but not yet sent.
	send          []sendSlot
	una, nxt, end uint32
	peerWindow    uint32
	// timer is when the retransmission timer expires; zero when stopped
	// (RFC 6298, 5).
	timer time.Duration
	// Receive side: rcvNxt is the next sequence number to deliver.
	recv   []recvSlot
	rcvNxt uint32
	// held counts the recv slots present: with none, an acknowledgement
	// has no selective part to look for.
	held       int
	reasm      []byte
	reasmLen   int
	reasmNext  uint16
	reasmCount uint16
	ackPending bool
	unacked    int
	// ackDue is when a pending acknowledgement must go out bare.
	ackDue time.Duration
	// closed is set while Room refuses the message that starts at
	// rcvNxt: its first frame waits in the receive ring, and the
	// channel advertises a window of zero.
	closed bool
}

// peer is what the endpoint knows about one other node.
type peer struct {
	id          NodeID
	mac         link.MAC
	replay      ReplayWindow
	incarnation uint64
	rtt         rttEstimator
	chans       []*channel
	stats       PeerStats
	lastHeard   time.Duration
}

// Endpoint is one node's end of the cluster transport. It is driven
// entirely by its callers: received frames arrive through the link's
// receiver, and timers advance on Tick. It starts no goroutines and is not
// safe for concurrent use: one goroutine (or a caller-held lock) must
// serialize HandleFrame, Tick, Send and the other methods. Handlers are
// called synchronously and may call Send.
type Endpoint struct {
	cfg     Config
	cipher  *Cipher
	link    link.Link
	mac     link.MAC
	fragMax int
	counter uint64
	peers   map[NodeID]*peer
	// history keeps the replay state of nodes that are not peers.
	history map[NodeID]history
	// strangerBudget is what is left of this tick's strangerOpens.
	strangerBudget int
	order          []*peer // peers sorted by id, for deterministic timer order
	tx             []byte
	stats          Stats
	now            time.Duration
}

// NewEndpoint validates cfg, fills in defaults and installs the endpoint as
// the link's receiver.
func NewEndpoint(cfg Config) (*Endpoint, error) {
	if cfg.ID == 0 {
		return nil, errors.New("cluster: node id 0 is reserved")
	}
	if cfg.Link == nil || cfg.Clock == nil {
		return nil, errors.New("cluster: Link and Clock are required")
	}
	c, err := NewCipher(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("cluster: endpoint %d: %w", cfg.ID, err)
	}
	if cfg.Channels == 0 {
		cfg.Channels = DefaultChannels
	}
	if cfg.AckEvery <= 0 {
		cfg.AckEvery = 2
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.MinRTO == 0 {
		cfg.MinRTO = DefaultMinRTO
	}
	if cfg.MaxRTO == 0 {
		cfg.MaxRTO = DefaultMaxRTO
	}
	if cfg.InitialRTO == 0 {
		cfg.InitialRTO = DefaultInitialRTO
	}
	switch {
	case cfg.Channels < 1 || cfg.Channels > 256:
		return nil, fmt.Errorf("cluster: %d channels, want 1..256", cfg.Channels)
	case cfg.Window < 1 || cfg.Window > MaxWindow:
		return nil, fmt.Errorf("cluster: window %d, want 1..%d", cfg.Window, MaxWindow)
	case cfg.MinRTO > cfg.MaxRTO:
		return nil, fmt.Errorf("cluster: MinRTO %v above MaxRTO %v", cfg.MinRTO, cfg.MaxRTO)
	}
	mtu := cfg.Link.MTU()
	fragMax := min(mtu-Overhead, 0xffff)
	if fragMax < 64 {
		return nil, fmt.Errorf("cluster: link MTU %d too small", mtu)
	}
	frags := (cfg.MaxMessage + fragMax - 1) / fragMax
	if frags > MaxFragments {
		return nil, fmt.Errorf("cluster: MaxMessage %d needs %d fragments, limit %d", cfg.MaxMessage, frags, MaxFragments)
	}
	if cfg.SendQueue == 0 {
		cfg.SendQueue = cfg.Window + frags
	}
	if cfg.SendQueue < frags {
		return nil, fmt.Errorf("cluster: SendQueue %d cannot hold a %d-fragment message", cfg.SendQueue, frags)
	}
	e := &Endpoint{
		cfg:            cfg,
		cipher:         c,
		link:           cfg.Link,
		mac:            cfg.Link.MAC(),
		fragMax:        fragMax,
		counter:        cfg.CounterBase,
		peers:          make(map[NodeID]*peer),
		history:        make(map[NodeID]history),
		strangerBudget: strangerOpens,
		tx:             make([]byte, link.HeaderLen+mtu),
		now:            cfg.Clock(),
	}
	cfg.Link.SetReceiver(e.HandleFrame)
	return e, nil
}

// ID returns this node's id.
func (e *Endpoint) ID() NodeID { return e.cfg.ID }

// MAC returns the address of the endpoint's link.
func (e *Endpoint) MAC() link.MAC { return e.mac }

// FragmentPayload returns the message bytes one frame carries.
func (e *Endpoint) FragmentPayload() int { return e.fragMax }

// Stats returns the endpoint's counters.
func (e *Endpoint) Stats() Stats { return e.stats }

// AddPeer lets frames from id in and makes it a destination. Adding an
// existing peer only updates its address.
func (e *Endpoint) AddPeer(id NodeID, mac link.MAC) error {
	if id == 0 || id == e.cfg.ID {
		return fmt.Errorf("cluster: add peer %d: invalid id", id)
	}
	if p, ok := e.peers[id]; ok {
		p.mac = mac
		return nil
	}
	p := &peer{
		id:    id,
		mac:   mac,
		rtt:   newRTTEstimator(e.cfg.InitialRTO, e.cfg.MinRTO, e.cfg.MaxRTO),
		chans: make([]*channel, e.cfg.Channels),
	}
	p.lastHeard = e.now
	if h, ok := e.history[id]; ok {
		p.replay.Restart(h.top)
		p.incarnation = h.incarnation
		if len(h.chans) == len(p.chans) {
			p.chans = h.chans // its streams go on where they were
		}
		delete(e.history, id)
	}
	e.peers[id] = p
	i, _ := slices.BinarySearchFunc(e.order, id, func(q *peer, id NodeID) int { return int(q.id) - int(id) })
	e.order = slices.Insert(e.order, i, p)
	return nil
}

// RemovePeer stops sending to id and taking its frames in. The endpoint
// keeps the highest frame counter and incarnation it had, so that frames
// recorded before are still replays if it becomes a peer again, and its
// channels as they are: a node removed from the cluster while it lived on
// (silent for a while, not restarted) never learns it was, and goes on
// numbering its messages where it was, so a channel that started again
// from zero took none of them, for ever (TestReAddedPeerKeepsItsStreams).
// What was queued for it is sent once it is a peer again; a peer that
// restarted meanwhile says so in its hello, which starts its channels
// again.
func (e *Endpoint) RemovePeer(id NodeID) {
	p, ok := e.peers[id]
	if !ok {
		return
	}
	e.remember(id, p.replay.Top(), p.incarnation)
	if h, ok := e.history[id]; ok {
		h.chans = p.chans
		e.history[id] = h
	}
	delete(e.peers, id)
	e.order = slices.DeleteFunc(e.order, func(p *peer) bool { return p.id == id })
}

// history is what the endpoint keeps of a node that is not a peer: the
// highest frame counter it authenticated from it and its incarnation,
// and its channels if it was a peer.
type history struct {
	top, incarnation uint64
	chans            []*channel
}

// maxHistory bounds the nodes remembered while not peers; only senders
// that hold the cluster key get in.
const maxHistory = 1 << 16

// remember keeps counter top and incarnation inc of node id, which is not
// (or no longer) a peer, unless it already has newer ones.
func (e *Endpoint) remember(id NodeID, top, inc uint64) {
	h, ok := e.history[id]
	if !ok && len(e.history) >= maxHistory {
		return
	}
	chans := h.chans
	if inc > h.incarnation {
		chans = nil // it restarted: its channels start again from zero
	}
	e.history[id] = history{top: max(h.top, top), incarnation: max(h.incarnation, inc), chans: chans}
}

// strangerOpens is how many frames from non-peers (hellos) the endpoint
// authenticates per Tick: AES-GCM work that anyone on the segment can
// ask for is bounded.
const strangerOpens = 16

// HasPeer reports whether id is a peer.
func (e *Endpoint) HasPeer(id NodeID) bool {
	_, ok := e.peers[id]
	return ok
}

// Peers appends the ids of all peers, in increasing order, to ids.
func (e *Endpoint) Peers(ids []NodeID) []NodeID {
	for _, p := range e.order {
		ids = append(ids, p.id)
	}
	return ids
}

// PeerStats returns the counters of peer id.
func (e *Endpoint) PeerStats(id NodeID) (PeerStats, bool) {
	p, ok := e.peers[id]
	if !ok {
		return PeerStats{}, false
	}
	s := p.stats
	s.ID, s.MAC = p.id, p.mac
	s.SRTT, s.RTTVar, s.RTO = p.rtt.srtt, p.rtt.rttvar, p.rtt.rto
	s.LastHeard = p.lastHeard
	return s, true
}

// Incarnation returns this endpoint's incarnation: its CounterBase, which
// every hello carries.
func (e *Endpoint) Incarnation() uint64 { return e.cfg.CounterBase }

// PeerIncarnation returns the newest incarnation an authenticated hello
// of node id announced, peer or not; ok is false if none arrived yet.
func (e *Endpoint) PeerIncarnation(id NodeID) (inc uint64, ok bool) {
	if p, isPeer := e.peers[id]; isPeer && p.incarnation != 0 {
		return p.incarnation, true
	}
	h, ok := e.history[id]
	return h.incarnation, ok && h.incarnation != 0
}

// LastHeard returns when an authenticated frame last arrived from id.
func (e *Endpoint) LastHeard(id NodeID) (time.Duration, bool) {
	p, ok := e.peers[id]
	if !ok {
		return 0, false
	}
	return p.lastHeard, true
}

// Idle reports whether every message sent has been acknowledged.
func (e *Endpoint) Idle() bool {
	for _, p := range e.order {
		for _, c := range p.chans {
			if c != nil && c.una != c.end {
				return false
			}
		}
	}
	return true
}

// ringSize is the number of slots of a ring that holds n frames: a power
// of two, so that slots indexed by sequence number modulo the ring size
// stay in order across the 2^32 wrap (a size that does not divide 2^32
// reused the slots of frames still in flight there).
func ringSize(n int) int {
	size := 1
	for size < n {
		size <<= 1
	}
	return size
}

// sendSlot returns the send ring's slot of sequence number seq.
func (c *channel) sendSlot(seq uint32) *sendSlot {
	return &c.send[seq&uint32(len(c.send)-1)]
}

// recvSlot returns the receive ring's slot of sequence number seq.
func (c *channel) recvSlot(seq uint32) *recvSlot {
	return &c.recv[seq&uint32(len(c.recv)-1)]
}

// chanFor returns channel ch of p, allocating its buffers on first use.
func (e *Endpoint) chanFor(p *peer, ch uint8) *channel {
	if c := p.chans[ch]; c != nil {
		return c
	}
	c := &channel{
		send:       make([]sendSlot, ringSize(e.cfg.SendQueue)),
		recv:       make([]recvSlot, ringSize(e.cfg.Window)),
		reasm:      make([]byte, e.cfg.MaxMessage),
		peerWindow: uint32(e.cfg.Window),
	}
	c.una, c.nxt, c.end, c.rcvNxt = e.cfg.firstSeq, e.cfg.firstSeq, e.cfg.firstSeq, e.cfg.firstSeq
	for i := range c.send {
		c.send[i].buf = make([]byte, e.fragMax)
	}
	for i := range c.recv {
		c.recv[i].buf = make([]byte, e.fragMax)
	}
	p.chans[ch] = c
	return c
}

// nextCounter returns a fresh frame counter, or 0 once MaxCounter is
// reached: the endpoint then sends nothing more.
func (e *Endpoint) nextCounter() uint64 {
	if e.counter >= MaxCounter {
		return 0
	}
	e.counter++
	return e.counter
}

// transmit seals the frame whose payload is already in e.tx and sends it.
func (e *Endpoint) transmit(dst link.MAC, h *Header, p *peer) {
	link.PutHeader(e.tx, dst, e.mac, link.EtherTypeCluster)
	h.Src = e.cfg.ID
	if h.Counter = e.nextCounter(); h.Counter == 0 {
		e.stats.TransmitErrors++
		return
	}
	f, err := e.cipher.Seal(e.tx, h)
	if err != nil {
		e.stats.TransmitErrors++
		return
	}
	if err := e.link.Transmit(f); err != nil {
		e.stats.TransmitErrors++
		return
	}
	if p != nil {
		p.stats.FramesOut++
		p.stats.BytesOut += uint64(len(f))
	}
}

// Send queues msg on channel ch to peer to and transmits as much of it as
// the peer's window allows. msg is copied; the caller may reuse it at once.
// Send returns ErrBusy when the channel's send queue has no room for the
// message: the caller retries after Tick has freed acknowledged frames.
func (e *Endpoint) Send(to NodeID, ch uint8, msg []byte) error {
	p, ok := e.peers[to]
	if !ok {
		return ErrUnknownPeer
	}
	if int(ch) >= e.cfg.Channels {
		return ErrChannel
	}
	if len(msg) > e.cfg.MaxMessage {
		return ErrMsgTooLong
	}
	if e.counter >= MaxCounter {
		return ErrCounterExhausted
	}
	c := e.chanFor(p, ch)
	frags := max(1, (len(msg)+e.fragMax-1)/e.fragMax)
	if e.cfg.SendQueue-int(c.end-c.una) < frags {
		return ErrBusy
	}
	for i := range frags {
		s := c.sendSlot(c.end)
		chunk := msg[min(i*e.fragMax, len(msg)):min((i+1)*e.fragMax, len(msg))]
		s.n = copy(s.buf, chunk)
		s.fragIndex, s.fragCount = uint16(i), uint16(frags)
		s.sends, s.sacked = 0, false
		c.end++
	}
	p.stats.MessagesOut++
	e.pump(p, ch, c)
	return nil
}

// pump sends queued frames that fit in the peer's window.
func (e *Endpoint) pump(p *peer, ch uint8, c *channel) {
	limit := c.una + min(c.peerWindow, uint32(e.cfg.Window))
	for c.nxt != c.end && int32(c.nxt-limit) < 0 {
		e.sendData(p, ch, c, c.nxt)
		c.nxt++
	}
}

// sendData transmits (or retransmits) the frame with sequence number seq,
// piggybacking the channel's acknowledgement state.
func (e *Endpoint) sendData(p *peer, ch uint8, c *channel, seq uint32) {
	s := c.sendSlot(seq)
	copy(e.tx[link.HeaderLen+HeaderLen:], s.buf[:s.n])
	h := Header{
		Type: TypeData, Channel: ch, Dst: p.id, Seq: seq,
		FragIndex: s.fragIndex, FragCount: s.fragCount, PayloadLen: uint16(s.n),
	}
	e.fillAck(c, &h)
	if s.sends == 0 {
		s.firstSent = e.now
	} else {
		p.stats.Retransmits++
	}
	s.sends++
	s.lastSent = e.now
	if c.timer == 0 {
		c.timer = e.now + p.rtt.rto // RFC 6298, 5.1
	}
	e.transmit(p.mac, &h, p)
}

// fillAck puts the receive state of c into h and clears the pending ack.
func (e *Endpoint) fillAck(c *channel, h *Header) {
	h.Ack = c.rcvNxt
	var sack uint64
	w := uint32(e.cfg.Window)
	for i := uint32(1); i < w && c.held > 0; i++ {
		if c.recvSlot(c.rcvNxt + i).present {
			sack |= 1 << (i - 1)
		}
	}
	h.SACK = sack
	h.Window = uint16(w)
	if c.closed {
		h.Window = 0
	}
	c.ackPending = false
	c.unacked = 0
}

// sendAck transmits a bare acknowledgement for channel ch.
func (e *Endpoint) sendAck(p *peer, ch uint8, c *channel) {
	h := Header{Type: TypeAck, Channel: ch, Dst: p.id}
	e.fillAck(c, &h)
	e.transmit(p.mac, &h, p)
}

// SendDatagram sends msg to peer to once, unreliably.
func (e *Endpoint) SendDatagram(to NodeID, msg []byte) error {
	p, ok := e.peers[to]
	if !ok {
		return ErrUnknownPeer
	}
	if len(msg) > e.fragMax {
		return ErrMsgTooLong
	}
	copy(e.tx[link.HeaderLen+HeaderLen:], msg)
	h := Header{Type: TypeDatagram, Dst: to, PayloadLen: uint16(len(msg))}
	e.transmit(p.mac, &h, p)
	return nil
}

// SendHello broadcasts a hello carrying this node's incarnation and payload.
func (e *Endpoint) SendHello(payload []byte) error {
	if len(payload)+helloPrefix > e.fragMax {
		return ErrMsgTooLong
	}
	b := e.tx[link.HeaderLen+HeaderLen:]
	binary.BigEndian.PutUint64(b, e.cfg.CounterBase)
	copy(b[helloPrefix:], payload)
	h := Header{Type: TypeHello, PayloadLen: uint16(helloPrefix + len(payload))}
	e.transmit(link.Broadcast, &h, nil)
	return nil
}

// Flush sends the acknowledgements that are waiting. A driver calls it after
// handling a batch of received frames; Tick calls it too.
func (e *Endpoint) Flush() {
	for _, p := range e.order {
		for ch, c := range p.chans {
			if c != nil && c.ackPending && e.now >= c.ackDue {
				e.sendAck(p, uint8(ch), c)
			}
		}
	}
}

// Tick advances the endpoint's timers to the clock's time: it sends pending
// acknowledgements and retransmits frames whose timeout expired.
func (e *Endpoint) Tick() {
	e.now = e.cfg.Clock()
	e.strangerBudget = strangerOpens
	for _, p := range e.order {
		fired := false
		for ch, c := range p.chans {
			if c == nil {
				continue
			}
			if c.timer != 0 && e.now >= c.timer {
				// RFC 6298, 5.4-5.6: retransmit what has been out for
				// a full timeout, back off, restart the timer. The
				// frame at the left edge goes even if the peer
				// acknowledged it selectively (RFC 2018, 8): a frame
				// held behind a closed window is, and the ack that
				// took it in may have been lost.
				c.timer = 0
				rto := p.rtt.rto
				for seq := c.una; seq != c.nxt; seq++ {
					s := c.sendSlot(seq)
					if seq == c.una || (!s.sacked && e.now-s.lastSent >= rto) {
						e.sendData(p, uint8(ch), c, seq)
					}
				}
				fired = true
			}
			if c.closed {
				e.reopen(p, uint8(ch), c)
			}
			if c.ackPending && e.now >= c.ackDue {
				e.sendAck(p, uint8(ch), c)
			}
			e.pump(p, uint8(ch), c)
		}
		if fired {
			p.rtt.timeout()
			for _, c := range p.chans {
				if c != nil && c.timer != 0 {
					c.timer = e.now + p.rtt.rto
				}
			}
		}
	}
}

// HandleFrame processes one received Ethernet frame. It is the link's
// receiver; frame may be modified in place and is not kept.
func (e *Endpoint) HandleFrame(frame []byte) {
	e.now = e.cfg.Clock()
	eh, err := link.ParseHeader(frame)
	if err != nil {
		e.stats.Short++
		return
	}
	if eh.Type != link.EtherTypeCluster {
		e.stats.EtherType++
		return
	}
	b := frame[link.HeaderLen:]
	h, err := ParseHeader(b)
	if err != nil {
		e.countMalformed(err)
		return
	}
	if h.Dst != e.cfg.ID && !(h.Dst == 0 && h.Type == TypeHello) {
		e.stats.NotForUs++
		return
	}
	if h.Src == e.cfg.ID {
		e.stats.OwnID++
		return
	}
	p := e.peers[h.Src]
	if p == nil {
		if h.Type != TypeHello {
			e.stats.UnknownPeer++
			return
		}
		if e.strangerBudget <= 0 {
			e.stats.Busy++
			return
		}
		e.strangerBudget--
		if hist := e.history[h.Src]; h.Counter <= hist.top {
			e.stats.Replay++
			return
		}
		_, payload, err := e.cipher.openParsed(frame, &h)
		if err != nil {
			e.stats.BadTag++
			return
		}
		var inc uint64
		if len(payload) >= helloPrefix {
			inc = binary.BigEndian.Uint64(payload)
		}
		if inc < e.history[h.Src].incarnation {
			e.stats.Stale++
			return
		}
		e.remember(h.Src, h.Counter, inc)
		e.handleHello(nil, h.Src, eh.Src, payload)
		return
	}
	if h.Counter <= p.incarnation {
		e.stats.Stale++
		return
	}
	if !p.replay.Check(h.Counter) {
		e.stats.Replay++
		return
	}
	_, payload, err := e.cipher.openParsed(frame, &h)
	if err != nil {
		e.stats.BadTag++
		return
	}
	p.replay.Accept(h.Counter)
	if gap := e.now - p.lastHeard; gap > p.stats.LongestSilence && p.stats.FramesIn > 0 {
		p.stats.LongestSilence = gap // not the wait for its first frame
	}
	p.lastHeard = e.now
	p.mac = eh.Src
	p.stats.FramesIn++
	p.stats.BytesIn += uint64(len(frame))
	switch h.Type {
	case TypeHello:
		e.handleHello(p, h.Src, eh.Src, payload)
	case TypeDatagram:
		if e.cfg.OnDatagram != nil {
			e.cfg.OnDatagram(h.Src, payload)
		}
	case TypeAck, TypeData:
		if int(h.Channel) >= e.cfg.Channels {
			e.stats.Channel++
			return
		}
		c := e.chanFor(p, h.Channel)
		e.handleAck(p, h.Channel, c, &h)
		if h.Type == TypeData {
			e.handleData(p, h.Channel, c, &h, payload)
		}
	}
}

// handleHello notes a peer's incarnation and passes the hello up.
func (e *Endpoint) handleHello(p *peer, from NodeID, mac link.MAC, payload []byte) {
	if len(payload) < helloPrefix {
		e.stats.Length++
		return
	}
	inc := binary.BigEndian.Uint64(payload)
	if p != nil && inc > p.incarnation {
		if p.incarnation != 0 {
			// The peer restarted: its channels start again from zero.
			for i := range p.chans {
				p.chans[i] = nil
			}
		}
		p.incarnation = inc
	}
	if e.cfg.OnHello != nil {
		e.cfg.OnHello(from, mac, payload[helloPrefix:])
	}
}

func (e *Endpoint) countMalformed(err error) {
	switch err {
	case ErrShort:
		e.stats.Short++
	case ErrVersion:
		e.stats.Version++
	case ErrType:
		e.stats.Type++
	case ErrFlags:
		e.stats.Flags++
	case ErrLength:
		e.stats.Length++
	case ErrFragment:
		e.stats.Fragment++
	case ErrSource:
		e.stats.Source++
	}
}

// handleAck applies the peer's cumulative and selective acknowledgements.
func (e *Endpoint) handleAck(p *peer, ch uint8, c *channel, h *Header) {
	if int32(h.Ack-c.una) < 0 {
		return // an old ack, overtaken by a newer one
	}
	if int32(h.Ack-c.nxt) > 0 {
		e.stats.BadAck++
		return
	}
	// RTT is sampled from the newest frame this ack newly covers,
	// cumulatively or selectively, if it was sent only once (Karn).
	var sampleFrom time.Duration = -1
	if h.Ack != c.una {
		for seq := c.una; seq != h.Ack; seq++ {
			s := c.sendSlot(seq)
			if s.sends == 1 && !s.sacked {
				sampleFrom = s.firstSent
			}
			s.sends = 0
		}
		c.una = h.Ack
		if c.una == c.nxt {
			c.timer = 0 // RFC 6298, 5.2
		} else {
			c.timer = e.now + p.rtt.rto // RFC 6298, 5.3
		}
	}
	c.peerWindow = uint32(h.Window)
	if h.SACK != 0 {
		// Behind a closed window (zero) the frame at the peer's
		// cumulative ack waits there unacknowledged: the
		// retransmission timer probes it, not every ack.
		probe := h.Window == 0
		var highest uint32
		found := false
		for i := uint32(0); i < 64; i++ {
			seq := h.Ack + 1 + i
			if int32(seq-c.nxt) >= 0 {
				break
			}
			if h.SACK&(1<<i) != 0 {
				s := c.sendSlot(seq)
				if !s.sacked && s.sends == 1 {
					sampleFrom = max(sampleFrom, s.firstSent)
				}
				s.sacked = true
				highest, found = seq, true
			}
		}
		// A frame sent before one the peer has is presumed lost once it
		// has been out for a smoothed round trip. (Without a selective
		// bit in range there is no such frame: highest is not a
		// sequence number then, and compared with una across the
		// half-range it once sent every slot round to it.)
		rtt := max(p.rtt.srtt, e.cfg.MinRTO)
		for seq := c.una; found && !probe && int32(seq-highest) < 0; seq++ {
			s := c.sendSlot(seq)
			if !s.sacked && e.now-s.lastSent >= rtt {
				e.sendData(p, ch, c, seq)
			}
		}
	}
	if sampleFrom >= 0 {
		p.rtt.sample(e.now - sampleFrom)
	}
	e.pump(p, ch, c)
}

// handleData accepts one data frame and delivers whatever became in order.
func (e *Endpoint) handleData(p *peer, ch uint8, c *channel, h *Header, payload []byte) {
	w := uint32(e.cfg.Window)
	d := h.Seq - c.rcvNxt
	switch {
	case int32(d) < 0:
		p.stats.Duplicates++
		e.sendAck(p, ch, c)
		return
	case d >= w:
		e.stats.OutOfWindow++
		e.sendAck(p, ch, c)
		return
	case len(payload) > e.fragMax:
		e.stats.Length++
		return
	}
	if d != 0 || c.closed || !e.room(p, ch, c, h.FragIndex) {
		// Out of order, or in order behind a closed window: kept
		// until its turn.
		s := c.recvSlot(h.Seq)
		if s.present {
			p.stats.Duplicates++
		} else {
			s.n = copy(s.buf, payload)
			s.fragIndex, s.fragCount = h.FragIndex, h.FragCount
			s.present = true
			c.held++
		}
		e.sendAck(p, ch, c)
		return
	}
	// In order: consume directly, then drain buffered successors.
	c.rcvNxt++
	c.unacked++
	if !c.ackPending {
		c.ackDue = e.now + e.cfg.AckDelay
	}
	c.ackPending = true
	e.consume(p, ch, c, payload, h.FragIndex, h.FragCount)
	e.drainRing(p, ch, c)
	if c.unacked >= e.cfg.AckEvery {
		e.sendAck(p, ch, c)
	}
}

// room asks Config.Room whether the message a fragment with index index
// would start can be taken in, and closes the channel's window if not.
// Fragments inside a message need no room: it was granted to the first.
func (e *Endpoint) room(p *peer, ch uint8, c *channel, index uint16) bool {
	if e.cfg.Room == nil || index != 0 || c.reasmCount != 0 || e.cfg.Room(p.id, ch) {
		return true
	}
	if !c.closed {
		c.closed = true
		e.stats.Closed++
	}
	return false
}

// drainRing consumes the frames waiting in the receive ring from rcvNxt
// on, as long as they are in order and Room lets their messages in.
func (e *Endpoint) drainRing(p *peer, ch uint8, c *channel) {
	for {
		s := c.recvSlot(c.rcvNxt)
		if !s.present || !e.room(p, ch, c, s.fragIndex) {
			return
		}
		s.present = false
		c.held--
		c.rcvNxt++
		c.unacked++
		e.consume(p, ch, c, s.buf[:s.n], s.fragIndex, s.fragCount)
	}
}

// reopen asks Room again for a closed channel; once it says yes, the
// frames that waited are delivered and an acknowledgement tells the peer
// the window is open.
func (e *Endpoint) reopen(p *peer, ch uint8, c *channel) {
	if !e.cfg.Room(p.id, ch) {
		return
	}
	c.closed = false
	e.drainRing(p, ch, c)
	e.sendAck(p, ch, c)
}

// consume adds one in-order fragment to the channel's message and delivers
// the message when it is complete.
func (e *Endpoint) consume(p *peer, ch uint8, c *channel, frag []byte, index, count uint16) {
	if c.reasmLen == 0 && c.reasmCount == 0 {
		if index != 0 {
			e.stats.Reassembly++
			return
		}
		if count == 1 {
			e.deliver(p, ch, frag)
			return
		}
		c.reasmCount = count
	} else if index != c.reasmNext || count != c.reasmCount {
		e.stats.Reassembly++
		c.reasmLen, c.reasmNext, c.reasmCount = 0, 0, 0
		if index == 0 {
			e.consume(p, ch, c, frag, index, count)
		}
		return
	}
	if c.reasmLen+len(frag) > len(c.reasm) {
		e.stats.Reassembly++
		c.reasmLen, c.reasmNext, c.reasmCount = 0, 0, 0
		return
	}
	c.reasmLen += copy(c.reasm[c.reasmLen:], frag)
	c.reasmNext = index + 1
	if c.reasmNext == count {
		n := c.reasmLen
		c.reasmLen, c.reasmNext, c.reasmCount = 0, 0, 0
		e.deliver(p, ch, c.reasm[:n])
	}
}

func (e *Endpoint) deliver(p *peer, ch uint8, msg []byte) {
	p.stats.MessagesIn++
	if e.cfg.OnMessage != nil {
		e.cfg.OnMessage(p.id, ch, msg)
	}
}
