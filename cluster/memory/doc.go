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
package memory
