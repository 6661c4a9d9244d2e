// Package model holds Promela models of the coherence protocol and tests
// that check them with spin, for one page, one home and two or three
// nodes over per-pair FIFO channels: the protocol of package memory
// (coherence.pml: single writer, no lost write, no deadlock, and every
// fault served), with homes that move (homes.pml), and walk windows
// (walkwin.pml: issue 18's remedy for emulators that walk guest page
// tables as writes, designed here before the engine implements it).
package model
