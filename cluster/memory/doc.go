// Package memory implements page-granular guest memory coherence for the
// hyperkernel: a directory protocol with Invalid / Shared / Modified states
// per node and a home node per guest page holding the directory entry
// (owner, sharer set, version).
//
// The protocol engine ([Engine]) is a pure state machine. It never touches
// the network or a clock: [Engine.Fault] and [Engine.HandleMessage] append
// outgoing messages to an [Outbox] and drive the guest's second-level page
// permissions through the [Permissions] interface, so the same code runs in
// the deterministic simulator (sim) and later over the raw
// Ethernet cluster transport with real EPT tables.
//
// # Delivery assumption
//
// The engine assumes what the cluster transport provides: per ordered pair
// of nodes, reliable, exactly-once, FIFO delivery (sequence numbers,
// cumulative acknowledgements, retransmission and duplicate suppression
// live in the transport, not here). Messages from different senders may
// interleave arbitrarily. All races the protocol resolves come from that
// interleaving: concurrent upgrades of a shared page, an invalidation
// crossing a fetch, and an owner evicting a page while the home is fetching
// it. The home serialises transactions per page (a busy directory entry
// queues later requests in arrival order), so every race has one
// deterministic outcome.
//
// # No lost write
//
// Exclusive ownership is granted only after every other copy is gone: all
// sharers acknowledged an invalidation and the previous owner returned its
// data (either in a fetch reply or in a writeback that overtook the fetch).
// Page data always travels with the message that moves it (4096 bytes).
//
// # Bounded copies
//
// A guest may be larger than any one node: each page's frame lives at its
// home, and the other nodes hold copies of what their vCPUs touch, at
// most Config.CopyFrames of them. A fault on a page homed elsewhere
// reserves the frame its answer will need before it sends the request: a
// free one, a new one while under the bound and while the FrameSource has
// one, or the frame of a victim copy evicted there and then (written back
// if Modified, through the same writeback that may overtake a fetch). The
// victim is chosen by the clock over the copies in fill order, skipping
// copies with a request outstanding and giving copies faulted on again
// (upgraded) a second chance. Because the frame is reserved before the
// request leaves, an answer never waits for memory, and a fault never
// waits for a frame that only its own eviction would free; when every
// copy has a request outstanding the fault returns FaultNoRoom, and
// retries once one of them has been answered, which needs no frame of
// this node's.
package memory
