// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package node

import (
	"fmt"
	"sync"
)

// raftLogLines is how many warning and error lines raftLog keeps.
const raftLogLines = 32

// raftLog is the Raft library's and membership's logger: it keeps the
// latest warnings and errors (for `node log`) and counts them, and drops
// debug and info chatter. Fatal and Panic panic, as Raft expects.
type raftLog struct {
	mu               sync.Mutex // guards the fields below
	lines            [raftLogLines]string
	next             int // where the next line goes
	warnings, errors uint64
}

func (l *raftLog) add(level string, s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if level == "error" {
		l.errors++
	} else {
		l.warnings++
	}
	l.lines[l.next%raftLogLines] = level + ": " + s
	l.next++
}

// Recent returns the kept lines, oldest first, and the counts.
func (l *raftLog) Recent() (lines []string, warnings, errors uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := max(0, l.next-raftLogLines); i < l.next; i++ {
		lines = append(lines, l.lines[i%raftLogLines])
	}
	return lines, l.warnings, l.errors
}

func (l *raftLog) Debug(...any)                {}
func (l *raftLog) Debugf(string, ...any)       {}
func (l *raftLog) Info(...any)                 {}
func (l *raftLog) Infof(string, ...any)        {}
func (l *raftLog) Warning(v ...any)            { l.add("warning", fmt.Sprint(v...)) }
func (l *raftLog) Warningf(f string, v ...any) { l.add("warning", fmt.Sprintf(f, v...)) }
func (l *raftLog) Error(v ...any)              { l.add("error", fmt.Sprint(v...)) }
func (l *raftLog) Errorf(f string, v ...any)   { l.add("error", fmt.Sprintf(f, v...)) }
func (l *raftLog) Fatal(v ...any)              { panic(fmt.Sprint(v...)) }
func (l *raftLog) Fatalf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
func (l *raftLog) Panic(v ...any)              { panic(fmt.Sprint(v...)) }
func (l *raftLog) Panicf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
