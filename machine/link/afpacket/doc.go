// Package afpacket implements link.Link over a Linux AF_PACKET socket bound
// to one network interface, receiving only frames of the cluster EtherType.
// It lets hosted nodes on Linux join a cluster of bare-metal nodes, and
// tests run the real transport over veth pairs. On other systems (including
// GOOS=tamago) the package is empty.
package afpacket
