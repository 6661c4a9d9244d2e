// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package serial

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestConsoleExpectSendDone(t *testing.T) {
	nodeOut, toConsole := io.Pipe()
	fromConsole, nodeIn := io.Pipe()
	c := NewConsole(nodeOut, nodeIn)
	go func() {
		toConsole.Write([]byte("booting\r\nbigiron> "))
		line, _ := bufio.NewReader(fromConsole).ReadString('\r')
		toConsole.Write([]byte("you typed " + strings.TrimSuffix(line, "\r") + "\r\nbigiron> "))
		toConsole.Close()
	}()
	if out, err := c.Expect("bigiron> ", time.Minute); err != nil || out != "booting\r\nbigiron> " {
		t.Fatalf("Expect = %q, %v", out, err)
	}
	if _, err := c.Expect("never printed", 10*time.Millisecond); err == nil || errors.Is(err, ErrClosed) {
		t.Fatalf("Expect of missing text: %v, want a timeout", err)
	}
	if err := c.Send("nodes"); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Expect("bigiron> ", time.Minute); err != nil || !strings.Contains(out, "you typed nodes\r\n") {
		t.Fatalf("Expect after Send = %q, %v", out, err)
	}
	select {
	case <-c.Done():
	case <-time.After(time.Minute):
		t.Fatal("Done not closed after the output ended")
	}
	if _, err := c.Expect("more", time.Minute); !errors.Is(err, ErrClosed) {
		t.Fatalf("Expect after the end: %v, want ErrClosed", err)
	}
	if got := c.Output(); !strings.HasPrefix(got, "booting") || !strings.HasSuffix(got, "bigiron> ") {
		t.Fatalf("Output = %q", got)
	}
}

func TestExpectAnyTakesTheFirstToAppear(t *testing.T) {
	c := NewConsole(strings.NewReader("boot\r\nerror: no VT-x\r\nstarted\r\n"), io.Discard)
	i, out, err := c.ExpectAny([]string{"started", "error: "}, time.Minute)
	if err != nil || i != 1 || out != "boot\r\nerror: " {
		t.Fatalf("ExpectAny = %d, %q, %v; want the error, which comes first", i, out, err)
	}
	if i, _, err := c.ExpectAny([]string{"started", "error: "}, time.Minute); err != nil || i != 0 {
		t.Fatalf("then ExpectAny = %d, %v; want started", i, err)
	}
}
