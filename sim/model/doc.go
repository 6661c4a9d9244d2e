// Package model holds the Promela model of the coherence protocol of
// package memory (coherence.pml) and a test that checks it with spin:
// single writer, no lost write, and no deadlock, for one page, one home and
// two or three nodes over per-pair FIFO channels.
package model
