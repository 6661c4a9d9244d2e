/*
 * Promela model of walk windows: the coherence protocol of
 * coherence.pml for one guest page-table page, with windows.
 *
 * The engine (cluster/memory/window.go) builds a stricter variant of
 * what is modelled here: a node publishes a changed window before it
 * serves any message, not only before it sends one, so an invalidation
 * never finds a changed window open (no diff rides on an
 * acknowledgement); and the diff does not travel to the home: the node
 * keeps its twin and merges its changes into the page its grant brings.
 * Both are among the orders modelled (a window may close at any time;
 * a diff merged when its grant arrives is one merged no later than
 * that). What the model leaves out, for want of a second page: while a
 * changed window's upgrade is outstanding the node must not show
 * another node a later store (dvm holds such answers; see
 * cluster/dvm/window.go).
 *
 * QEMU's TCG asks for write access to every guest page table it walks
 * under nested paging, even where it then sets no accessed bit. A node
 * that holds a read copy of a page table and faults on it in a walk
 * does not ask the home for ownership: it opens a window, mapping its
 * copy writable locally and keeping a twin. Through the window the
 * walker sets accessed bits and the guest's software may store to
 * entries (the mapping is writable: those stores do not fault). Before
 * the node sends any message that another node could learn of its
 * stores by (modelled as `ext`: an IPI, a lock handed on, a device
 * access), it closes every window: unchanged, silently; changed, by
 * publishing the diff to the home in an ownership request and waiting
 * for the grant. An invalidation closes a window too, its
 * acknowledgement carrying the diff. The home merges each diff into its
 * memory when it arrives: an entry whose software bits a window changed
 * is taken from it, accessed bits are ORed. Two windows changing one
 * entry's software bits before an ownership grant ends them all is a
 * conflict (the hyperkernel stops the VM); a guest that stores page-table
 * entries only under its page-table lock (Linux's discipline, modelled
 * by a token only its holder stores under, handed on by `ext`) never
 * makes one. A node that asks for ownership of a page it holds a copy
 * of stops reading its copy until the grant: another node's window may
 * have changed the page, the grant carries the merged page, and that
 * node may already have told others (the check found this: with the
 * copy readable, a node learned of a store by a message and then read
 * its older copy).
 *
 * The page has two entries of 3 bits: software bits 0-1 (the value of
 * the latest store, which grows: each store writes a new, larger value)
 * and the accessed bit 2; entry e is at bits 3e..3e+2.
 *
 * Checked, for two nodes and one home, each walker setting one accessed
 * bit (-DWALKS=2 for two: too large a search here), -DEVICTS=0 without
 * evictions (the -short test):
 *  - single writer outside windows: a Modified copy excludes every other
 *    valid copy, windows included;
 *  - no lost write: a Modified copy holds every store and accessed bit
 *    made so far; so does the home's memory at the end when no window is
 *    open;
 *  - causality (what x86-TSO gives a guest that passes messages): a node
 *    never holds a copy older than what it learned from another node's
 *    message, including stores that node made in a window;
 *  - no conflict under the lock discipline;
 *  - no deadlock: at the end no request is outstanding and no message in
 *    flight.
 * -DBUG_NO_CLOSE (a node sends a message with a window open),
 * -DBUG_NO_LOCK (software stores without the lock) and
 * -DBUG_READ_UPGRADING (a copy read while its node waits for ownership)
 * show the checks can fail; -DREACH_WINDOW_STORE and -DREACH_INV_DIFF
 * fail where the search merges a window's software store, and a diff an
 * invalidation's acknowledgement carried, to show it gets there.
 *
 * Run: spin -a walkwin.pml && gcc -O2 -DCOLLAPSE -o pan pan.c && ./pan -m1000000
 * (go test ./sim/model does this).
 */

#ifndef N
#define N 2
#endif
#define NONE 255
#ifndef MAXSW
#define MAXSW 2     /* software stores in the run */
#endif
#ifndef FAULTS
#define FAULTS 2    /* faults per node */
#endif
#ifndef WALKS
#define WALKS 1     /* accessed bits a node's walker sets */
#endif
#ifndef EXTS
#define EXTS 1      /* messages a node sends another */
#endif
#ifndef EVICTS
#define EVICTS 1    /* evictions per node */
#endif

#define I 0
#define S 1
#define M 2

/* flags */
#define HASDATA 1
#define HAVECOPY 2
#define KEPT 4
#define HASDIFF 8
#define SWCHG0 16   /* the diff changed entry 0's software bits */
#define SWCHG1 32

#define SWOF(p, e) (((p) >> (3 * (e))) & 3)
#define ABIT(e) (4 << (3 * (e)))
#define ABITS (ABIT(0) | ABIT(1))
#define SWMASK(e) (3 << (3 * (e)))

/* The deliberate bugs: software stores without the lock, a copy read
 * while its node waits for ownership, messages sent with a window open. */
#ifdef BUG_NO_LOCK
#define LOCKED(i) true
#else
#define LOCKED(i) (tok == i)
#endif
#ifdef BUG_READ_UPGRADING
#define HIDDEN(a) false
#else
#define HIDDEN(a) (pend[a] == 2)
#endif
#ifdef BUG_NO_CLOSE
#define CLOSED(i) true
#else
#define CLOSED(i) (!win[i])
#endif

mtype = { ReadReq, WriteReq, ReadData, WriteGrant, Inv, InvAck, Fetch, FetchInv, FetchReply, Writeback };

/* kind, src, flags, version, data */
chan toHome[N] = [4] of { mtype, byte, byte, byte, byte };
chan toNode[N] = [4] of { mtype, byte, byte, byte, byte };
/* messages between nodes (IPIs, the lock): src, what it knows, token */
chan ext[N] = [N * EXTS] of { byte, byte, bool };

byte st[N];     /* cache state */
byte val[N];    /* cached data */
byte ver[N];    /* cached version */
byte pend[N];   /* 0, ReadReq 1, WriteReq 2 */
bool win[N];    /* a window is open on the Shared copy */
byte twin[N];   /* the copy when it opened */
byte know[N];   /* ghost: the latest of each entry this node has seen */
byte gsw[2];    /* ghost: the latest software value of each entry */
byte ga;        /* ghost: the accessed bits set */
byte swv;       /* software stores so far (each writes swv) */
byte tok = 0;   /* the page-table lock: its holder, NONE in flight */
byte owner = NONE;
bool busy;
byte mem;

byte a, b; /* check() loop counters */

/* geq: p holds at least what k says (each entry's software value as new,
 * every accessed bit). */
#define GEQ(p, k) (SWOF(p, 0) >= SWOF(k, 0) && SWOF(p, 1) >= SWOF(k, 1) && ((k) & ABITS & ~(p)) == 0)
#define LATEST(p) (SWOF(p, 0) == gsw[0] && SWOF(p, 1) == gsw[1] && ((p) & ABITS) == ga)

/* join: k becomes the latest of k and p. */
inline join(k, p) {
	k = (k & ABITS) | (p & ABITS) |
	    (SWOF(k, 0) > SWOF(p, 0) -> SWOF(k, 0) : SWOF(p, 0)) |
	    (SWOF(k, 1) > SWOF(p, 1) -> SWOF(k, 1) : SWOF(p, 1)) << 3
}

inline check() {
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
		assert(st[a] != M || LATEST(val[a]));
		assert(st[a] == I || HIDDEN(a) || GEQ(val[a], know[a]));
		assert(!win[a] || st[a] == S);
		a++
	:: else -> break
	od
}

proctype Cache(byte i) {
	byte faults = 0, walks = 0, exts = 0, evicts = 0, e, j, fl;
	mtype k; byte src, v, d;
	bool tf;
end:	do
	/* read fault */
	:: atomic { pend[i] == 0 && st[i] == I && faults < FAULTS ->
		faults++; pend[i] = 1; toHome[i]!ReadReq, i, 0, ver[i], 0 }
	/* write fault: a software store on a copy it cannot write */
	:: atomic { pend[i] == 0 && st[i] != M && !win[i] && faults < FAULTS && swv < MAXSW && LOCKED(i) ->
		faults++; pend[i] = 2;
		if
		:: st[i] == S -> toHome[i]!WriteReq, i, HAVECOPY, ver[i], 0
		:: else -> toHome[i]!WriteReq, i, 0, ver[i], 0
		fi }
	/* close the window: unchanged, silently; changed, by publishing the
	 * diff in an ownership request */
	:: atomic { pend[i] == 0 && win[i] ->
		win[i] = false;
		if
		:: val[i] == twin[i] -> skip
		:: else ->
			fl = HAVECOPY | HASDIFF;
			if
			:: SWOF(val[i], 0) != SWOF(twin[i], 0) -> fl = fl | SWCHG0
			:: else -> skip
			fi;
			if
			:: SWOF(val[i], 1) != SWOF(twin[i], 1) -> fl = fl | SWCHG1
			:: else -> skip
			fi;
			pend[i] = 2; toHome[i]!WriteReq, i, fl, ver[i], val[i]
		fi;
		fl = 0; check() }
	/* the walker sets entry e's accessed bit, opening a window on a
	 * Shared copy */
	:: atomic { pend[i] == 0 && st[i] != I && walks < WALKS ->
		walks++;
		if
		:: e = 0
		:: e = 1
		fi;
		if
		:: st[i] == S && !win[i] -> win[i] = true; twin[i] = val[i]
		:: else -> skip
		fi;
		val[i] = val[i] | ABIT(e); ga = ga | ABIT(e); join(know[i], val[i]);
		e = 0; check() }
	/* a software store to entry e, through ownership or a window */
	:: atomic { pend[i] == 0 && (st[i] == M || win[i]) && swv < MAXSW && LOCKED(i) ->
		swv++;
		if
		:: e = 0
		:: e = 1
		fi;
		val[i] = (val[i] & ~SWMASK(e)) | (swv << (3 * e)); gsw[e] = swv;
		join(know[i], val[i]);
		e = 0; check() }
	/* a message to another node, handing the lock on if held: every
	 * window closed first */
	:: atomic { pend[i] == 0 && exts < EXTS && CLOSED(i) ->
		exts++;
		if
		:: j = (i + 1) % N
#if N > 2
		:: j = (i + 2) % N
#endif
		fi;
		if
		:: tok == i -> tok = NONE; ext[j]!i, know[i], true
		:: ext[j]!i, know[i], false
		fi;
		j = 0 }
	:: atomic { ext[i]?src, d, tf ->
		join(know[i], d);
		if
		:: tf -> tok = i
		:: else -> skip
		fi;
		src = 0; d = 0; tf = false; check() }
	/* evict Modified: write back */
	:: atomic { pend[i] == 0 && st[i] == M && evicts < EVICTS ->
		evicts++; toHome[i]!Writeback, i, HASDATA, ver[i], val[i]; st[i] = I }
	/* evict Shared without a window: silent */
	:: atomic { pend[i] == 0 && st[i] == S && !win[i] && evicts < EVICTS -> evicts++; st[i] = I }
	/* messages from the home */
	:: atomic { toNode[i]?k, src, fl, v, d ->
		if
		:: k == ReadData ->
			assert(pend[i] == 1 && (fl & HASDATA));
			st[i] = S; val[i] = d; ver[i] = v; pend[i] = 0
		:: k == WriteGrant ->
			assert(pend[i] == 2 && !win[i]);
			if
			:: fl & HASDATA -> val[i] = d
			:: else -> assert(st[i] == S && ver[i] + 1 == v)
			fi;
			st[i] = M; ver[i] = v; pend[i] = 0
		:: k == Inv ->
			assert(st[i] != M);
			if
			:: win[i] && val[i] != twin[i] ->
				fl = HASDIFF;
				if
				:: SWOF(val[i], 0) != SWOF(twin[i], 0) -> fl = fl | SWCHG0
				:: else -> skip
				fi;
				if
				:: SWOF(val[i], 1) != SWOF(twin[i], 1) -> fl = fl | SWCHG1
				:: else -> skip
				fi;
				toHome[i]!InvAck, i, fl, v, val[i]
			:: else -> toHome[i]!InvAck, i, 0, v, 0
			fi;
			win[i] = false; st[i] = I
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
		if
		:: st[i] != I -> join(know[i], val[i])
		:: else -> skip
		fi;
		k = 0; src = 0; fl = 0; v = 0; d = 0;
		check() }
	od
}

proctype Home() {
	byte sharers = 0, version = 0, swMerged = 0;
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
		/* a window's diff is merged as it arrives: while any window
		 * is open no node owns the page, so every diff is against
		 * the memory's base */
		if
		:: fl & HASDIFF ->
			assert(owner == NONE);
#ifdef REACH_WINDOW_STORE
			assert((fl & (SWCHG0 | SWCHG1)) == 0);
#endif
#ifdef REACH_INV_DIFF
			assert(k != InvAck);
#endif
			if
			:: fl & SWCHG0 ->
				assert((swMerged & 1) == 0); /* two windows stored to one entry */
				swMerged = swMerged | 1;
				mem = (mem & ~SWMASK(0)) | (d & SWMASK(0))
			:: else -> skip
			fi;
			if
			:: fl & SWCHG1 ->
				assert((swMerged & 2) == 0);
				swMerged = swMerged | 2;
				mem = (mem & ~SWMASK(1)) | (d & SWMASK(1))
			:: else -> skip
			fi;
			mem = mem | (d & ABITS);
			/* copies taken before lack it: a grant under way
			 * carries the memory */
			version++; txhave = false
		:: else -> skip
		fi;
		started = false;
		if
		:: (k == ReadReq || k == WriteReq) && busy -> waitq!k, src, fl, v
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
			if
			:: txk == ReadReq ->
				sharers = sharers | (1 << txreq);
				toNode[txreq]!ReadData, 0, HASDATA, version, mem
			:: else ->
				/* no window is open anywhere now */
				version++; owner = txreq; sharers = 0; swMerged = 0;
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
		k = 0; src = 0; fl = 0; v = 0; d = 0; n = 0;
		check() }
	od
}

/* When nothing can move any more, every request must have been answered
 * and every channel drained; with no window open and no owner, the
 * memory holds every store and accessed bit. */
active proctype Watchdog() {
	timeout ->
	assert(pend[0] == 0 && pend[1] == 0 && empty(toHome[0]) && empty(toHome[1]) && empty(toNode[0]) && empty(toNode[1]));
#if N > 2
	assert(pend[2] == 0 && empty(toHome[2]) && empty(toNode[2]));
#endif
	assert(!busy);
	assert(owner != NONE || win[0] || win[1]
#if N > 2
		|| win[2]
#endif
		|| LATEST(mem))
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
