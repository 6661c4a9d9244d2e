// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

// This file is not a package of big-iron's: the build adds it to the
// runtime package of the tamago Go distribution with go build's -overlay
// (tools/toolchain writes the overlay, the Makefile passes it). It holds
// what the board needs from the scheduler and no hook offers; see
// (*SMP).task in machine/board/x86/smp.go.

package runtime

import (
	"internal/abi"
	"unsafe"
)

// bigironUnstartedM takes back what newm gave an M that the board has no
// hardware thread for, so that nothing is lost: the M will never run.
//
// The scheduler asks for a new M whenever it finds none idle for a P
// that needs one. On tamago each core runs one M for good, and after a
// stop-the-world an M that has given up its P may not have reached the
// idle list yet when startTheWorld looks for one; so the scheduler asks
// for an M beyond the cores. Left as it is, that M's P would be owned by
// nobody: its goroutines would never run and the next stop-the-world
// would wait for it for ever.
//
// So the P's runnable goroutines move to the global queue, which every
// running M serves; the P goes back on the idle list, where the next
// wakep finds it together with the M that has parked by then; a
// spinning M's count (wakep raised it for the new M) is lowered again;
// the M's 8 MiB thread stack is freed; and the M, which stays on allm,
// is counted as a system M so that it is not taken for a running one.
//
// newosproc calls it through goos.Task, possibly without a P: no write
// barriers. sp is the stack top newosproc gave goos.Task.
//
//go:linkname bigironUnstartedM
//go:nowritebarrierrec
func bigironUnstartedM(mpp, sp unsafe.Pointer) {
	mp := (*m)(mpp)
	pp := mp.nextp.ptr()
	mp.nextp = 0
	lock(&sched.lock)
	sched.nmsys++
	if pp != nil {
		if fn := mp.mstartfn; fn != nil && **(**uintptr)(unsafe.Pointer(&fn)) == abi.FuncPCABIInternal(mspinning) {
			sched.nmspinning.Add(-1)
		}
		q := runqdrain(pp)
		globrunqputbatch(&q)
		pidleput(pp, 0)
	}
	unlock(&sched.lock)
	sysFree(unsafe.Pointer(uintptr(sp)-stacksize), stacksize, &memstats.stacks_sys)
}
