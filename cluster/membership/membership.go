// Package membership keeps the list of nodes that form the big-iron
// machine, agreed by every member through a replicated log.
//
// Nodes announce themselves with hellos and exchange heartbeats over the
// cluster transport. The member list (node id, MAC, IP) is the state machine
// of a Raft log (go.etcd.io/raft/v3, RawNode) whose messages travel on a
// dedicated reliable channel of the transport. Joining, failing and leaving
// are Raft configuration changes, so every member applies them, and records
// them as events, in the same order. A member that cannot reach a majority
// says so and admits no change.
//
// A Node is driven by explicit calls (Tick and the Handle methods) from one
// goroutine, like the transport Endpoint it sits on.
package membership

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/big-iron/big-iron/machine/link"
	"github.com/big-iron/big-iron/netstack/cluster"
)

// ChannelRaft is the transport channel that carries Raft messages.
const ChannelRaft uint8 = 0

// Defaults for Config fields left zero.
const (
	DefaultTickInterval      = 10 * time.Millisecond
	DefaultHeartbeatInterval = 50 * time.Millisecond
	DefaultFailureTimeout    = 500 * time.Millisecond
	// maxRaftMessage bounds the entries in one Raft append so a message
	// fits the transport's maximum message size.
	maxRaftMessage = 16 << 10
)

// Member is one node of the cluster as recorded in the log.
type Member struct {
	ID  cluster.NodeID
	MAC link.MAC
	IP  string
	// Incarnation is the life of the node the record speaks of: its
	// transport incarnation (cluster.Endpoint.Incarnation), which grows
	// with every boot. Zero in a bootstrap list, where it is not known
	// yet: each node then takes the first it sees.
	Incarnation uint64
}

// EventKind says what happened to a member.
type EventKind uint8

// Event kinds. Their values are part of the log encoding.
const (
	Joined EventKind = 1
	Failed EventKind = 2
	Left   EventKind = 3
	// Restarted removes a member that booted again: Raft's state lives
	// in memory, so the new life has forgotten what the old one voted
	// and acknowledged, and may only come back as a new member.
	Restarted EventKind = 4
)

// String names the event kind.
func (k EventKind) String() string {
	switch k {
	case Joined:
		return "joined"
	case Failed:
		return "failed"
	case Left:
		return "left"
	case Restarted:
		return "restarted"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one applied membership change. Index is its position in the
// replicated log, so equal event lists mean equal histories.
type Event struct {
	Index uint64
	Kind  EventKind
	Member
}

// String formats the event for logs and the shell.
func (e Event) String() string {
	return fmt.Sprintf("#%d node %d %s (%s %s)", e.Index, e.ID, e.Kind, e.MAC, e.IP)
}

// State is a node's standing as seen by this node.
type State uint8

// States.
const (
	StateJoining State = iota // not yet in the member list
	StateMember               // in the member list
	StateLeft                 // removed from the member list
)

// String names the state.
func (s State) String() string {
	switch s {
	case StateJoining:
		return "joining"
	case StateMember:
		return "member"
	case StateLeft:
		return "removed"
	}
	return "unknown"
}

// Config configures a Node.
type Config struct {
	// Endpoint is the node's transport. The caller routes its traffic to
	// the Node: messages on ChannelRaft to HandleMessage, datagrams to
	// HandleDatagram, hellos to HandleHello.
	Endpoint *cluster.Endpoint
	// Clock returns monotonic time (the same clock as the Endpoint's).
	Clock func() time.Duration
	// IP is this node's IP address as text, shown to other nodes; may be empty.
	IP string
	// Bootstrap, if it names this node, starts a new cluster with these
	// members (every initial node must be given the same list). If empty,
	// the node joins an existing cluster by saying hello.
	Bootstrap []Member
	// TickInterval is the duration of one Raft tick.
	TickInterval time.Duration
	// ElectionTicks and HeartbeatTicks are Raft's timeouts in ticks; zero
	// means FailureTimeout and HeartbeatInterval, in ticks. A silence that
	// is no failure then starts no election either: a Raft election
	// timeout below the failure timeout made every slow stretch of a link
	// (Bochs' peers go 200-350 ms unheard) an election at a higher term.
	ElectionTicks, HeartbeatTicks int
	// HeartbeatInterval is how often the node sends heartbeats and hellos.
	HeartbeatInterval time.Duration
	// FailureTimeout is how long a member may stay silent before the leader
	// proposes to remove it as failed.
	FailureTimeout time.Duration
	// QuorumTimeout is how recently a member must have been heard from to
	// count towards this node's quorum; 0 means FailureTimeout/2.
	QuorumTimeout time.Duration
	// Logger receives Raft's log; nil discards it.
	Logger raft.Logger
}

// Errors returned by Node methods.
var (
	ErrNoQuorum  = errors.New("membership: no quorum")
	ErrNotMember = errors.New("membership: not a member")
)

// Node is one node's view of, and vote in, the cluster membership.
type Node struct {
	cfg     Config
	id      cluster.NodeID
	ep      *cluster.Endpoint
	rn      *raft.RawNode
	storage *raft.MemoryStorage

	members map[cluster.NodeID]Member
	events  []Event
	state   State
	// bound is the incarnation of each member whose messages count: the
	// one its record names, else the first seen. restarted holds the
	// newer incarnation of members seen to have booted again, whose
	// messages are dropped until the cluster has removed them (see
	// current).
	bound     map[cluster.NodeID]uint64
	restarted map[cluster.NodeID]uint64

	now           time.Duration
	nextRaftTick  time.Duration
	nextHeartbeat time.Duration
	lastProposal  time.Duration
	badMessages   uint64

	hello   []byte
	scratch [9]byte
}

// New creates a Node. It does not send anything until the first Tick.
func New(cfg Config) (*Node, error) {
	if cfg.Endpoint == nil || cfg.Clock == nil {
		return nil, errors.New("membership: Endpoint and Clock are required")
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = DefaultTickInterval
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.FailureTimeout == 0 {
		cfg.FailureTimeout = DefaultFailureTimeout
	}
	if cfg.HeartbeatTicks == 0 {
		cfg.HeartbeatTicks = max(1, int(cfg.HeartbeatInterval/cfg.TickInterval))
	}
	if cfg.ElectionTicks == 0 {
		cfg.ElectionTicks = int((cfg.FailureTimeout + cfg.TickInterval - 1) / cfg.TickInterval)
	}
	if cfg.ElectionTicks <= cfg.HeartbeatTicks {
		return nil, fmt.Errorf("membership: election timeout of %d ticks not above the heartbeat's %d", cfg.ElectionTicks, cfg.HeartbeatTicks)
	}
	if cfg.QuorumTimeout == 0 {
		cfg.QuorumTimeout = cfg.FailureTimeout / 2
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger{}
	}
	if len(cfg.IP) > 255 {
		return nil, fmt.Errorf("membership: IP %q too long", cfg.IP)
	}
	id := cfg.Endpoint.ID()
	st := raft.NewMemoryStorage()
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                uint64(id),
		ElectionTick:      cfg.ElectionTicks,
		HeartbeatTick:     cfg.HeartbeatTicks,
		Storage:           st,
		MaxSizePerMsg:     maxRaftMessage,
		MaxInflightMsgs:   64,
		CheckQuorum:       true,
		PreVote:           true,
		StepDownOnRemoval: true,
		Logger:            cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("membership: node %d: %w", id, err)
	}
	n := &Node{
		cfg: cfg, id: id, ep: cfg.Endpoint, rn: rn, storage: st,
		members:   make(map[cluster.NodeID]Member),
		bound:     make(map[cluster.NodeID]uint64),
		restarted: make(map[cluster.NodeID]uint64),
		now:       cfg.Clock(),
	}
	n.nextRaftTick = n.now + cfg.TickInterval
	if slices.ContainsFunc(cfg.Bootstrap, func(m Member) bool { return m.ID == id }) {
		peers := make([]raft.Peer, 0, len(cfg.Bootstrap))
		for _, m := range cfg.Bootstrap {
			peers = append(peers, raft.Peer{ID: uint64(m.ID), Context: encodeContext(Joined, m)})
			if m.ID != id {
				if err := n.ep.AddPeer(m.ID, m.MAC); err != nil {
					return nil, fmt.Errorf("membership: bootstrap: %w", err)
				}
			}
		}
		if err := rn.Bootstrap(peers); err != nil {
			return nil, fmt.Errorf("membership: bootstrap: %w", err)
		}
	}
	return n, nil
}

// encodeContext encodes the record a configuration change carries:
// kind, MAC, IP length, IP and incarnation (big-endian).
func encodeContext(kind EventKind, m Member) []byte {
	b := make([]byte, 0, 16+len(m.IP))
	b = append(b, byte(kind))
	b = append(b, m.MAC[:]...)
	b = append(b, byte(len(m.IP)))
	b = append(b, m.IP...)
	return binary.BigEndian.AppendUint64(b, m.Incarnation)
}

// decodeContext is the inverse of encodeContext; m.ID is left zero.
func decodeContext(b []byte) (EventKind, Member, error) {
	var m Member
	if len(b) < 16 || len(b) != 16+int(b[7]) {
		return 0, m, fmt.Errorf("membership: change record of %d bytes", len(b))
	}
	copy(m.MAC[:], b[1:7])
	m.IP = string(b[8 : 8+b[7]])
	m.Incarnation = binary.BigEndian.Uint64(b[8+b[7]:])
	return EventKind(b[0]), m, nil
}

// ID returns this node's id.
func (n *Node) ID() cluster.NodeID { return n.id }

// HandleMessage takes a Raft message received on ChannelRaft: the
// sender's incarnation (8 bytes, big-endian), then the message.
func (n *Node) HandleMessage(from cluster.NodeID, msg []byte) {
	if len(msg) < 8 {
		n.badMessages++
		n.cfg.Logger.Warningf("membership: raft message of %d bytes from %d", len(msg), from)
		return
	}
	if !n.current(from, binary.BigEndian.Uint64(msg)) {
		return
	}
	msg = msg[8:]
	m := &raftpb.Message{}
	if err := proto.Unmarshal(msg, m); err != nil {
		n.badMessages++
		n.cfg.Logger.Warningf("membership: bad raft message from %d: %v", from, err)
		return
	}
	// The transport authenticated the sender; Raft must see the same one.
	if m.GetFrom() != uint64(from) || m.GetTo() != uint64(n.id) {
		n.badMessages++
		n.cfg.Logger.Warningf("membership: raft message from %d claims %d->%d", from, m.GetFrom(), m.GetTo())
		return
	}
	if n.state == StateLeft {
		return
	}
	if !peerMessage[m.GetType()] {
		n.badMessages++
		n.cfg.Logger.Warningf("membership: raft message of type %v from %d", m.GetType(), from)
		return
	}
	n.step(m)
}

// peerMessage lists the Raft message types one node sends another; the
// rest are local to a node, and Raft panics if it is handed some of them.
var peerMessage = map[raftpb.MessageType]bool{
	raftpb.MsgProp: true, raftpb.MsgApp: true, raftpb.MsgAppResp: true,
	raftpb.MsgVote: true, raftpb.MsgVoteResp: true,
	raftpb.MsgPreVote: true, raftpb.MsgPreVoteResp: true,
	raftpb.MsgHeartbeat: true, raftpb.MsgHeartbeatResp: true,
	raftpb.MsgTransferLeader: true, raftpb.MsgTimeoutNow: true,
	raftpb.MsgReadIndex: true, raftpb.MsgReadIndexResp: true,
}

// step hands m to Raft. Raft trusts its peers and panics on some
// inconsistent messages (a commit index past the end of the log, say);
// peers hold the cluster key, so such a message means a bug or a
// compromised member: it is counted and dropped instead of crashing the
// hyperkernel.
func (n *Node) step(m *raftpb.Message) {
	defer func() {
		if r := recover(); r != nil {
			n.badMessages++
			n.cfg.Logger.Errorf("membership: raft rejected message %v from %d: %v", m.GetType(), m.GetFrom(), r)
		}
	}()
	_ = n.rn.Step(m)
}

// current reports whether a message or hello of incarnation inc from
// node from speaks for the member this node knows, and notes a member
// that booted again. Such a member forgot what its earlier life voted
// and acknowledged: counted again, it could elect a leader without a
// change that life helped commit. So its messages are dropped until the
// cluster has removed it (the leader proposes that, as Restarted) and
// admitted the new life as a new member. The exception is a cluster of
// one or two members: every quorum there includes the other member,
// which holds every committed entry, and a member with an empty log can
// neither win a vote nor undo one, so the new life simply takes the old
// one's place (without that, a cluster of two could never recover from
// a reboot: the removal would need the rebooted node's vote).
func (n *Node) current(from cluster.NodeID, inc uint64) bool {
	if _, member := n.members[from]; !member || from == n.id {
		return true
	}
	switch b := n.bound[from]; {
	case b == 0 || inc == b:
		n.bound[from] = inc
		return true
	case inc < b:
		return false // an earlier life's, delayed
	case len(n.members) <= 2:
		n.bound[from] = inc
		n.cfg.Logger.Warningf("membership: node %d restarted; with %d members it rejoins as it is", from, len(n.members))
		return true
	}
	if n.restarted[from] != inc {
		n.restarted[from] = inc
		n.cfg.Logger.Warningf("membership: node %d restarted and lost its Raft state: it is not heard until the cluster removes and readmits it", from)
	}
	return false
}

// record returns member id's record with the incarnation this node
// binds it to.
func (n *Node) record(id cluster.NodeID) Member {
	m := n.members[id]
	if b := n.bound[id]; b != 0 {
		m.Incarnation = b
	}
	return m
}

// BadMessages returns the number of Raft messages dropped as malformed.
func (n *Node) BadMessages() uint64 { return n.badMessages }

// Datagram kinds.
const (
	dgHeartbeat byte = 1
	dgRemoved   byte = 2 // "you are no longer a member"
)

// HandleDatagram takes an unreliable datagram (heartbeats, notices).
func (n *Node) HandleDatagram(from cluster.NodeID, msg []byte) {
	if len(msg) == 0 {
		return
	}
	if msg[0] == dgRemoved && n.state != StateJoining {
		if len(msg) == 9 && binary.BigEndian.Uint64(msg[1:]) != n.ep.Incarnation() {
			return // an earlier life of this node was removed
		}
		if _, ok := n.members[from]; ok || n.state == StateLeft {
			n.state = StateLeft
		}
	}
	// Heartbeats need no handling: any authenticated frame refreshes the
	// transport's last-heard time of its sender.
}

// HandleHello takes a hello from any node holding the cluster key.
func (n *Node) HandleHello(from cluster.NodeID, mac link.MAC, payload []byte) {
	if len(payload) < 2 || len(payload) != 2+int(payload[1]) {
		return
	}
	ip := string(payload[2:])
	if n.state == StateJoining {
		// Not a member yet: talk to anyone who says hello, so that
		// the leader's messages get through.
		_ = n.ep.AddPeer(from, mac)
		return
	}
	inc, _ := n.ep.PeerIncarnation(from)
	if m, ok := n.members[from]; ok {
		// Every member binds every other to the life it hears, so that
		// it notices a reboot even if that member never sent it a Raft
		// message before.
		n.current(from, inc)
		if m.MAC != mac && n.rn.BasicStatus().RaftState == raft.StateLeader {
			n.cfg.Logger.Warningf("membership: node id %d claimed by %s and %s", from, m.MAC, mac)
		}
		return
	}
	if n.state != StateMember || n.rn.BasicStatus().RaftState != raft.StateLeader {
		return
	}
	if !n.hasQuorum() || n.now-n.lastProposal < n.electionTimeout() {
		return
	}
	n.lastProposal = n.now
	cc := &raftpb.ConfChange{
		Type:    raftpb.ConfChangeAddNode.Enum(),
		NodeId:  proto.Uint64(uint64(from)),
		Context: encodeContext(Joined, Member{ID: from, MAC: mac, IP: ip, Incarnation: inc}),
	}
	_ = n.rn.ProposeConfChange(cc)
}

func (n *Node) electionTimeout() time.Duration {
	return time.Duration(n.cfg.ElectionTicks) * n.cfg.TickInterval
}

// Tick advances Raft's clock, sends heartbeats and hellos, proposes the
// removal of silent members (on the leader), and applies what Raft has
// committed. Call it often: at least every TickInterval.
func (n *Node) Tick() {
	n.now = n.cfg.Clock()
	for due := n.dueRaftTicks(); due > 0; due-- {
		n.rn.Tick()
	}
	if n.now >= n.nextHeartbeat && n.state != StateLeft {
		n.nextHeartbeat = n.now + n.cfg.HeartbeatInterval
		n.heartbeat()
	}
	if n.state == StateMember && n.rn.BasicStatus().RaftState == raft.StateLeader {
		n.detectFailures()
	}
	n.processReady()
}

// dueRaftTicks returns how many Raft ticks to run now and moves the next
// one on. A tick loop that stalled (its goroutine starved) does not make
// up the ticks it missed while the transport went on receiving from the
// other members: run in one burst after the messages that arrived
// meanwhile were stepped, those ticks counted the whole stall as
// silence, so that a stalled leader found its follower inactive twice
// over (CheckQuorum) and stepped down, and a stalled follower campaigned
// and took over at a higher term. Only the ticks since a member was last heard
// are made up: a node that heard nothing while it stalled (its link or
// itself down) still counts all of that silence.
func (n *Node) dueRaftTicks() int {
	if n.nextRaftTick > n.now {
		return 0
	}
	iv := n.cfg.TickInterval
	missed := int((n.now-n.nextRaftTick)/iv) + 1
	n.nextRaftTick += time.Duration(missed) * iv
	quiet := missed
	for id := range n.members {
		if heard, ok := n.ep.LastHeard(id); ok && id != n.id {
			quiet = min(quiet, int((n.now-heard)/iv))
		}
	}
	return max(1, quiet)
}

// heartbeat sends a hello to everyone and a heartbeat to every member.
func (n *Node) heartbeat() {
	if n.hello == nil {
		n.hello = append([]byte{byte(n.state), byte(len(n.cfg.IP))}, n.cfg.IP...)
	}
	n.hello[0] = byte(n.state)
	_ = n.ep.SendHello(n.hello)
	n.scratch[0] = dgHeartbeat
	for id := range n.members {
		if id != n.id {
			_ = n.ep.SendDatagram(id, n.scratch[:1])
		}
	}
}

// detectFailures proposes the removal of one member silent for longer than
// FailureTimeout. Only the leader, with a quorum, proposes.
func (n *Node) detectFailures() {
	if !n.hasQuorum() || n.now-n.lastProposal < n.electionTimeout() {
		return
	}
	for _, id := range n.memberIDs() {
		if id == n.id {
			continue
		}
		kind := Restarted
		if _, ok := n.restarted[id]; !ok {
			heard, ok := n.ep.LastHeard(id)
			if !ok || n.now-heard <= n.cfg.FailureTimeout {
				continue
			}
			kind = Failed
		}
		n.lastProposal = n.now
		cc := &raftpb.ConfChange{
			Type:    raftpb.ConfChangeRemoveNode.Enum(),
			NodeId:  proto.Uint64(uint64(id)),
			Context: encodeContext(kind, n.record(id)),
		}
		_ = n.rn.ProposeConfChange(cc)
		return
	}
}

// Leave asks the cluster to remove this node cleanly. The node's state
// becomes StateLeft once the removal is applied.
func (n *Node) Leave() error {
	if n.state != StateMember {
		return ErrNotMember
	}
	if !n.hasQuorum() {
		return ErrNoQuorum
	}
	cc := &raftpb.ConfChange{
		Type:    raftpb.ConfChangeRemoveNode.Enum(),
		NodeId:  proto.Uint64(uint64(n.id)),
		Context: encodeContext(Left, Member{ID: n.id, MAC: n.ep.MAC(), IP: n.cfg.IP, Incarnation: n.ep.Incarnation()}),
	}
	if err := n.rn.ProposeConfChange(cc); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	return nil
}

// processReady persists, sends and applies what Raft has ready.
func (n *Node) processReady() {
	for n.rn.HasReady() {
		rd := n.rn.Ready()
		if !raft.IsEmptyHardState(rd.HardState) {
			_ = n.storage.SetHardState(rd.HardState)
		}
		if len(rd.Entries) > 0 {
			_ = n.storage.Append(rd.Entries)
		}
		for _, m := range rd.Messages {
			n.send(m)
		}
		for _, e := range rd.CommittedEntries {
			n.apply(e)
		}
		n.rn.Advance(rd)
	}
}

// send marshals a Raft message onto the transport.
func (n *Node) send(m *raftpb.Message) {
	to := cluster.NodeID(m.GetTo())
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+proto.Size(m)), n.ep.Incarnation())
	b, err := proto.MarshalOptions{}.MarshalAppend(b, m)
	if err != nil {
		n.cfg.Logger.Errorf("membership: marshal raft message: %v", err)
		return
	}
	if err := n.ep.Send(to, ChannelRaft, b); err != nil {
		n.rn.ReportUnreachable(uint64(to))
	}
}

// apply applies one committed entry.
func (n *Node) apply(e *raftpb.Entry) {
	if e.GetType() != raftpb.EntryConfChange {
		return
	}
	var cc raftpb.ConfChange
	if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
		n.cfg.Logger.Errorf("membership: entry %d: %v", e.GetIndex(), err)
		return
	}
	n.rn.ApplyConfChange(&cc)
	id := cluster.NodeID(cc.GetNodeId())
	kind, m, err := decodeContext(cc.GetContext())
	if err != nil {
		// Raft's own empty changes carry no record.
		return
	}
	m.ID = id
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode:
		if _, ok := n.members[id]; ok {
			return
		}
		n.members[id] = m
		if m.Incarnation != 0 {
			n.bound[id] = m.Incarnation
		}
		n.events = append(n.events, Event{Index: e.GetIndex(), Kind: Joined, Member: m})
		if id == n.id {
			n.state = StateMember
		} else {
			_ = n.ep.AddPeer(id, m.MAC)
		}
	case raftpb.ConfChangeRemoveNode:
		old, ok := n.members[id]
		if !ok {
			return
		}
		old.Incarnation = m.Incarnation
		delete(n.members, id)
		delete(n.bound, id)
		delete(n.restarted, id)
		n.events = append(n.events, Event{Index: e.GetIndex(), Kind: kind, Member: old})
		if id == n.id {
			if m.Incarnation != 0 && m.Incarnation != n.ep.Incarnation() {
				// An earlier life of this node was removed: this one
				// joins as a new member.
				n.state = StateJoining
				return
			}
			n.state = StateLeft
			return
		}
		if kind == Restarted {
			// Its new life is on the wire and about to be admitted
			// again: the transport keeps talking to it (its hello
			// starts its channels again from zero, as its own did).
			return
		}
		n.scratch[0] = dgRemoved
		binary.BigEndian.PutUint64(n.scratch[1:], m.Incarnation)
		_ = n.ep.SendDatagram(id, n.scratch[:9])
		n.ep.RemovePeer(id)
	}
}

// memberIDs returns the member ids in increasing order.
func (n *Node) memberIDs() []cluster.NodeID {
	ids := make([]cluster.NodeID, 0, len(n.members))
	for id := range n.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// reachable counts the members heard from within QuorumTimeout, self included.
func (n *Node) reachable() int {
	live := 0
	for id := range n.members {
		if id == n.id {
			live++
			continue
		}
		if heard, ok := n.ep.LastHeard(id); ok && n.now-heard <= n.cfg.QuorumTimeout {
			live++
		}
	}
	return live
}

// hasQuorum reports whether this node is a member, knows a leader and can
// reach a majority of the members.
func (n *Node) hasQuorum() bool {
	if n.state != StateMember {
		return false
	}
	return n.rn.BasicStatus().Lead != raft.None && 2*n.reachable() > len(n.members)
}

// Status summarizes this node's view of the cluster.
type Status struct {
	ID        cluster.NodeID
	State     State
	Leader    cluster.NodeID
	Term      uint64
	Members   []cluster.NodeID
	Reachable int
	// Quorum is true when this node can reach a majority and a leader, so
	// the cluster may admit changes through it.
	Quorum bool
	// Reason explains a missing quorum in words ("no quorum: ..."); empty
	// when Quorum is true.
	Reason string
}

// String formats the status in one line.
func (s Status) String() string {
	q := "quorum"
	if !s.Quorum {
		q = s.Reason
	}
	return fmt.Sprintf("node %d %s, leader %d, term %d, members %v: %s", s.ID, s.State, s.Leader, s.Term, s.Members, q)
}

// Status returns this node's view of the cluster.
func (n *Node) Status() Status {
	bs := n.rn.BasicStatus()
	s := Status{
		ID:        n.id,
		State:     n.state,
		Leader:    cluster.NodeID(bs.Lead),
		Term:      bs.HardState.GetTerm(),
		Members:   n.memberIDs(),
		Reachable: n.reachable(),
	}
	switch {
	case n.state == StateJoining:
		s.Reason = "no quorum: not yet a member"
	case n.state == StateLeft:
		s.Reason = "no quorum: removed from the cluster"
	case 2*s.Reachable <= len(n.members):
		s.Reason = fmt.Sprintf("no quorum: %d of %d members reachable", s.Reachable, len(n.members))
	case bs.Lead == raft.None:
		s.Reason = "no quorum: no leader"
	default:
		s.Quorum = true
	}
	return s
}

// Members returns the member list in id order.
func (n *Node) Members() []Member {
	out := make([]Member, 0, len(n.members))
	for _, id := range n.memberIDs() {
		out = append(out, n.members[id])
	}
	return out
}

// Events returns a copy of the applied membership events, in log order.
func (n *Node) Events() []Event { return slices.Clone(n.events) }

// Lost reports whether node id, a member when a distributed VM began,
// is gone as this node sees it: removed from the members, or silent for
// longer than silence (at least FailureTimeout). It is this node's own
// judgement, quorum or not: a VM cannot wait for the cluster to agree
// before it stops using a node that no longer answers. why says which.
func (n *Node) Lost(id cluster.NodeID, silence time.Duration) (why string, lost bool) {
	if id == n.id {
		return "", false
	}
	if _, member := n.members[id]; !member {
		return "removed from the cluster", true
	}
	heard, ok := n.ep.LastHeard(id)
	if !ok {
		return "not a transport peer", true
	}
	if silent := n.now - heard; silent > max(silence, n.cfg.FailureTimeout) {
		return fmt.Sprintf("silent for %v", silent.Round(time.Millisecond)), true
	}
	return "", false
}

// NodeInfo is one line of the shell's `nodes` command.
type NodeInfo struct {
	ID    cluster.NodeID
	MAC   link.MAC
	IP    string
	State string // "self", "alive", "silent", or "peer" for non-members
	cluster.PeerStats
}

// Nodes returns per-node information and transport statistics for every
// member and every other transport peer, in id order.
func (n *Node) Nodes() []NodeInfo {
	ids := n.ep.Peers(nil)
	for id := range n.members {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]NodeInfo, 0, len(ids))
	for _, id := range ids {
		info := NodeInfo{ID: id}
		m, member := n.members[id]
		if member {
			info.MAC, info.IP = m.MAC, m.IP
		}
		switch ps, ok := n.ep.PeerStats(id); {
		case id == n.id:
			info.State = "self"
			info.MAC = n.ep.MAC()
			info.IP = n.cfg.IP
		case ok:
			info.PeerStats = ps
			info.MAC = ps.MAC
			switch {
			case !member:
				info.State = "peer"
			case n.now-ps.LastHeard <= n.cfg.QuorumTimeout:
				info.State = "alive"
			default:
				info.State = "silent"
			}
		}
		out = append(out, info)
	}
	return out
}

// discardLogger drops Raft's log output (but still panics on Panic).
type discardLogger struct{}

func (discardLogger) Debug(...any)              {}
func (discardLogger) Debugf(string, ...any)     {}
func (discardLogger) Error(...any)              {}
func (discardLogger) Errorf(string, ...any)     {}
func (discardLogger) Info(...any)               {}
func (discardLogger) Infof(string, ...any)      {}
func (discardLogger) Warning(...any)            {}
func (discardLogger) Warningf(string, ...any)   {}
func (discardLogger) Fatal(v ...any)            { panic(fmt.Sprint(v...)) }
func (discardLogger) Fatalf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
func (discardLogger) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (discardLogger) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
