//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/big-iron/big-iron/machine/link/afpacket"
	"github.com/big-iron/big-iron/machine/nic"
)

// runServer is the serving side, node 1 in namespace b: it echoes floor
// frames, answers transport messages and serves its share of the VM,
// taking frames in as pol paces its receive loop. It
// writes "ready" to out once it does, and stops when in reaches its end.
func runServer(in io.Reader, out io.Writer, pol nic.Polling) error {
	raw, err := openRaw(ifB, 100*time.Millisecond)
	if err != nil {
		return err
	}
	plink, err := afpacket.Open(ifB, etherPollFloor)
	if err != nil {
		raw.close()
		return fmt.Errorf("polled floor: %w", err)
	}
	s, err := newSide(1, ifB, pol)
	if err != nil {
		raw.close()
		plink.Close()
		return err
	}
	var stop atomic.Bool
	floorErr := make(chan error, 1)
	go func() { floorErr <- serveFloor(raw, s.st.l.MTU(), &stop) }()
	pstop, polled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(polled)
		servePollFloor(plink, pol, pstop)
	}()
	fmt.Fprintln(out, "ready")
	io.Copy(io.Discard, in)
	stop.Store(true)
	close(pstop)
	<-polled
	return errors.Join(<-floorErr, s.close(), raw.close(), plink.Close())
}
