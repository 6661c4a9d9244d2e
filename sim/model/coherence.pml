/*
 * Promela model of the big-iron page coherence protocol
 * (cluster/memory/engine.go), for one page.
 *
 * N cache nodes and one home (directory + memory copy). Channels are FIFO
 * per ordered pair and never lose or duplicate: that is what the cluster
 * transport provides (sequence numbers, acks, retransmission, duplicate
 * suppression) and all the protocol assumes; messages from different
 * senders interleave arbitrarily, which is where the races are.
 *
 * Checked:
 *  - single writer: a Modified copy excludes every other valid copy;
 *  - no lost write: every valid copy, and the home memory when nobody owns
 *    the page, holds the latest value written (ghost variable `latest`);
 *  - no deadlock: once every node has used its budget of faults, writes
 *    and evictions, the system quiesces with no request outstanding and no
 *    message in flight (watchdog on `timeout`), and spin finds no invalid
 *    end state.
 *
 *  - with -DLIVENESS, progress: every fault node 0 takes is eventually
 *    served (LTL `served`, checked for acceptance cycles under weak
 *    fairness, pan -a -f; a run that ends with the fault pending stutters
 *    for ever and violates it too).
 *
 * Run: spin -a coherence.pml && gcc -O2 -DCOLLAPSE -o pan pan.c && ./pan -m1000000
 * (go test ./sim/model does this). -DN=2 checks two nodes;
 * -DBUG_SKIP_INV breaks the protocol to show the checks can fail, and
 * -DBUG_DROP_QUEUED (the home drops a request that finds it busy instead
 * of queueing it) shows the liveness check can.
 */

#ifndef N
#define N 3
#endif
#define NONE 255
#ifndef MAXW
#define MAXW 3      /* writes in the whole run */
#endif
#ifndef FAULTS
#define FAULTS 2    /* faults per node */
#endif
#define EVICTS 1    /* evictions per node */

#define I 0
#define S 1
#define M 2

/* flags */
#define HASDATA 1
#define HAVECOPY 2
#define KEPT 4

mtype = { ReadReq, WriteReq, ReadData, WriteGrant, Inv, InvAck, Fetch, FetchInv, FetchReply, Writeback };

/* kind, src, flags, version, data */
chan toHome[N] = [4] of { mtype, byte, byte, byte, byte };
chan toNode[N] = [4] of { mtype, byte, byte, byte, byte };

byte st[N];     /* cache state */
byte val[N];    /* cached data */
byte ver[N];    /* cached version */
byte pend[N];   /* 0, ReadReq 1, WriteReq 2 */
byte latest;    /* ghost: value of the latest write */
byte writes;
byte owner = NONE;  /* home directory, global so the invariant can see it */
bool busy;
byte mem;

byte a, b; /* swmr() loop counters */

inline swmr() {
	a = 0;
	do
	:: a < N ->
		b = 0;
		do
		:: b < N ->
			assert(a == b || st[a] != M || st[b] == I);
			b++
		:: else -> break
		od;
		assert(st[a] == I || val[a] == latest);
		a++
	:: else -> break
	od;
	assert(owner != NONE || busy || mem == latest)
}

proctype Cache(byte i) {
	byte faults = 0, evicts = 0;
	mtype k; byte src, fl, v, d;
end:	do
	/* read fault */
	:: atomic { pend[i] == 0 && st[i] == I && faults < FAULTS ->
		faults++; pend[i] = 1; toHome[i]!ReadReq, i, 0, ver[i], 0 }
	/* write fault (upgrade if Shared) */
	:: atomic { pend[i] == 0 && st[i] != M && faults < FAULTS && writes < MAXW ->
		faults++; pend[i] = 2;
		if
		:: st[i] == S -> toHome[i]!WriteReq, i, HAVECOPY, ver[i], 0
		:: else -> toHome[i]!WriteReq, i, 0, ver[i], 0
		fi }
	/* guest write while Modified */
	:: atomic { st[i] == M && writes < MAXW -> writes++; latest++; val[i] = latest; swmr() }
	/* evict Modified: write back */
	:: atomic { pend[i] == 0 && st[i] == M && evicts < EVICTS ->
		evicts++; toHome[i]!Writeback, i, HASDATA, ver[i], val[i]; st[i] = I }
	/* evict Shared: silent */
	:: atomic { pend[i] == 0 && st[i] == S && evicts < EVICTS -> evicts++; st[i] = I }
	/* messages from the home */
	:: atomic { toNode[i]?k, src, fl, v, d ->
		if
		:: k == ReadData ->
			assert(pend[i] == 1 && (fl & HASDATA));
			st[i] = S; val[i] = d; ver[i] = v; pend[i] = 0
		:: k == WriteGrant ->
			assert(pend[i] == 2);
			if
			:: fl & HASDATA -> val[i] = d
			:: else -> assert(st[i] == S && ver[i] + 1 == v)
			fi;
			st[i] = M; ver[i] = v; pend[i] = 0
		:: k == Inv ->
			assert(st[i] != M);
			st[i] = I;
			toHome[i]!InvAck, i, 0, v, 0
		:: k == Fetch || k == FetchInv ->
			assert(st[i] != S);
			if
			:: st[i] == M && k == Fetch ->
				st[i] = S; toHome[i]!FetchReply, i, HASDATA | KEPT, ver[i], val[i]
			:: st[i] == M && k == FetchInv ->
				st[i] = I; toHome[i]!FetchReply, i, HASDATA, ver[i], val[i]
			:: else -> /* written back already: the writeback overtook the fetch */
				toHome[i]!FetchReply, i, 0, v, 0
			fi
		fi;
		k = 0; src = 0; fl = 0; v = 0; d = 0;
		swmr() }
	od
}

proctype Home() {
	byte sharers = 0, version = 0;
	byte txk, txreq, dataFrom = NONE, acks = 0;
	bool txhave, waitData, gotWB;
	chan waitq = [N] of { mtype, byte, byte, byte };
	mtype k; byte src, fl, v, d, n;
	bool started;

end:	do
	:: atomic {
		if
		:: toHome[0]?k, src, fl, v, d
		:: toHome[1]?k, src, fl, v, d
#if N > 2
		:: toHome[2]?k, src, fl, v, d
#endif
		fi;
		started = false;
		if
#ifdef BUG_DROP_QUEUED
		:: (k == ReadReq || k == WriteReq) && busy -> skip /* deliberately broken: the request is lost */
#else
		:: (k == ReadReq || k == WriteReq) && busy -> waitq!k, src, fl, v
#endif
		:: (k == ReadReq || k == WriteReq) && !busy -> started = true
		:: k == InvAck ->
			assert(busy && (acks & (1 << src)));
			acks = acks & ~(1 << src)
		:: k == FetchReply ->
			assert(busy && waitData && dataFrom == src);
			if
			:: fl & HASDATA -> assert(v == version); mem = d
			:: else -> assert(gotWB)
			fi;
			waitData = false; gotWB = false; dataFrom = NONE; owner = NONE;
			if
			:: txk == ReadReq && (fl & KEPT) -> sharers = sharers | (1 << src)
			:: else -> skip
			fi
		:: k == Writeback ->
			assert(owner == src && (fl & HASDATA) && v == version);
			mem = d; owner = NONE;
			if
			:: busy && waitData && dataFrom == src -> gotWB = true
			:: else -> skip
			fi
		fi;
		/* start the request in k/src (if started), then grant what can be
		 * granted, then serve queued requests */
		do
		:: started ->
			started = false;
			assert(owner != src);
			busy = true; txk = k; txreq = src;
			if
			:: owner != NONE ->
				waitData = true; gotWB = false; dataFrom = owner;
				if
				:: k == WriteReq -> toNode[owner]!FetchInv, txreq, 0, version, 0
				:: else -> toNode[owner]!Fetch, txreq, 0, version, 0
				fi
			:: else -> skip
			fi;
			if
			:: k == WriteReq ->
				txhave = (owner == NONE && (fl & HAVECOPY) && (sharers & (1 << src)) && v == version);
				acks = sharers & ~(1 << src);
#ifdef BUG_SKIP_INV
				acks = 0; /* deliberately broken: grant without invalidating */
#endif
				n = 0;
				do
				:: n < N ->
					if
					:: acks & (1 << n) -> toNode[n]!Inv, txreq, 0, version, 0
					:: else -> skip
					fi;
					n++
				:: else -> break
				od
			:: else -> skip
			fi
		:: !started && busy && acks == 0 && !waitData ->
			/* complete */
			if
			:: txk == ReadReq ->
				sharers = sharers | (1 << txreq);
				toNode[txreq]!ReadData, 0, HASDATA, version, mem
			:: else ->
				version++; owner = txreq; sharers = 0;
				if
				:: txhave -> toNode[txreq]!WriteGrant, 0, 0, version, 0
				:: else -> toNode[txreq]!WriteGrant, 0, HASDATA, version, mem
				fi
			fi;
			busy = false; txhave = false
		:: !started && !busy && nempty(waitq) ->
			waitq?k, src, fl, v; started = true
		:: !started && !(busy && acks == 0 && !waitData) && (busy || empty(waitq)) -> break
		od;
		k = 0; src = 0; fl = 0; v = 0; d = 0; n = 0; /* dead locals out of the state vector */
		swmr() }
	od
}

#ifdef LIVENESS
/* Every fault node 0 takes is served: it does not stay pending for ever. */
ltl served { [] ((pend[0] != 0) -> <> (pend[0] == 0)) }
#endif

/* When nothing can move any more, every request must have been answered
 * and every channel drained: otherwise the protocol deadlocked. */
active proctype Watchdog() {
	timeout ->
	assert(pend[0] == 0 && pend[1] == 0 && empty(toHome[0]) && empty(toHome[1]) && empty(toNode[0]) && empty(toNode[1]));
#if N > 2
	assert(pend[2] == 0 && empty(toHome[2]) && empty(toNode[2]));
#endif
	assert(!busy)
}

init {
	atomic {
		byte j = 0;
		do
		:: j < N -> st[j] = I; run Cache(j); j++
		:: else -> break
		od;
		run Home()
	}
}
