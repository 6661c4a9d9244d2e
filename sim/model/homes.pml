/*
 * Promela model of the big-iron page coherence protocol with homes that
 * move (cluster/memory/engine.go, Config.FirstTouch and MoveAfter), for
 * one page.
 *
 * Every node is both a cache and, while it homes the page, its home: the
 * directory entry and the page's memory. A write grant may carry the
 * home to the node it grants (FlagHome) when that node offered to take
 * it and no request is queued behind the grant; whether it does is left
 * to the model checker (every policy is some choice of these moves, up
 * to MOVES of them). Each node knows the home as the node it handed the
 * home to or the last home it heard from; a request that reaches a node
 * that does not home the page is passed on to the home it knows.
 * Channels are FIFO per ordered pair, a node's own messages included,
 * and never lose or duplicate (what the cluster transport provides).
 *
 * Checked:
 *  - single writer: a Modified copy excludes every other valid copy;
 *  - no lost write: every valid copy, and the home's memory when nobody
 *    owns the page, holds the latest value written (ghost `latest`);
 *  - one home at most at any time, and a request is never passed back
 *    to the node that made it;
 *  - no deadlock: once every node has used its budget of faults, writes,
 *    evictions and moves, the system quiesces with no request
 *    outstanding, no message in flight and exactly one home;
 *  - with -DLIVENESS, progress: every fault node 0 takes is eventually
 *    served (LTL `served`, acceptance cycles under weak fairness).
 *
 * Run: spin -a homes.pml && gcc -O2 -DCOLLAPSE -o pan pan.c && ./pan -m1000000
 * (go test ./sim/model does this). -DBUG_NO_FORWARD (a node that no
 * longer homes the page serves a request anyway, from its stale
 * directory) shows the checks can fail; -DREACH_FORWARD fails at the
 * first request passed on, to show the search reaches one.
 */

#ifndef N
#define N 3
#endif
#define NONE 255
#ifndef MAXW
#define MAXW 2      /* writes in the whole run */
#endif
#ifndef FAULTS
#define FAULTS 2    /* faults per node */
#endif
#ifndef MOVES
#define MOVES 2     /* home moves in the whole run */
#endif
#define EVICTS 1    /* evictions per node */

#define I 0
#define S 1
#define M 2

/* flags */
#define HASDATA 1
#define HAVECOPY 2
#define KEPT 4
#define CANHOME 8
#define HOME 16

mtype = { ReadReq, WriteReq, ReadData, WriteGrant, Inv, InvAck, Fetch, FetchInv, FetchReply, Writeback };

/* ch[s*N+d] carries s's messages to d: kind, requester, flags, version, data */
chan ch[N*N] = [3] of { mtype, byte, byte, byte, byte };
#define C(s, d) ch[(s)*N+(d)]

/* cache side */
byte st[N];     /* cache state */
byte val[N];    /* cached data */
byte ver[N];    /* cached version */
byte pend[N];   /* 0, ReadReq 1, WriteReq 2 */
byte home[N];   /* the home as node i knows it; i itself while it homes the page */

/* directory side, meaningful at the node that homes the page */
byte owner[N];
byte sharers[N];
byte version[N];
byte mem[N];
bool busy[N];
byte txk[N], txreq[N], dataFrom[N], acks[N];
bool txhave[N], txcan[N], waitData[N], gotWB[N];
chan waitq[N] = [N] of { mtype, byte, byte, byte };

byte latest;    /* ghost: value of the latest write */
byte writes;
byte moves;

byte a, b, h; /* swmr() loop counters */

inline swmr() {
	a = 0; h = 0;
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
		if
		:: home[a] == a ->
			h++;
			assert(owner[a] != NONE || busy[a] || mem[a] == latest)
		:: else -> skip
		fi;
		a++
	:: else -> break
	od;
	assert(h <= 1);
	a = 0; b = 0; h = 0
}

/* send: node i sends a message to node d. */
#define send(i, d, k, r, fl, v, x) C(i, d)!k, r, fl, v, x

proctype Node(byte i) {
	byte faults = 0, evicts = 0;
	mtype k; byte r, fl, v, d, n, src;
	bool started;

end:	do
	/* read fault */
	:: atomic { pend[i] == 0 && st[i] == I && faults < FAULTS ->
		faults++; pend[i] = 1; send(i, home[i], ReadReq, i, 0, ver[i], 0) }
	/* write fault (upgrade if Shared), offering to take the home */
	:: atomic { pend[i] == 0 && st[i] != M && faults < FAULTS && writes < MAXW ->
		faults++; pend[i] = 2;
		fl = 0;
		if
		:: st[i] == S -> fl = HAVECOPY
		:: else -> skip
		fi;
		if
		:: home[i] != i -> fl = fl | CANHOME
		:: else -> skip
		fi;
		send(i, home[i], WriteReq, i, fl, ver[i], 0);
		fl = 0 }
	/* guest write while Modified */
	:: atomic { st[i] == M && writes < MAXW -> writes++; latest++; val[i] = latest; swmr() }
	/* evict Modified: write back (the home never evicts) */
	:: atomic { pend[i] == 0 && st[i] == M && home[i] != i && evicts < EVICTS ->
		evicts++; send(i, home[i], Writeback, i, HASDATA, ver[i], val[i]); st[i] = I }
	/* evict Shared: silent */
	:: atomic { pend[i] == 0 && st[i] == S && home[i] != i && evicts < EVICTS -> evicts++; st[i] = I }
	/* a message from node src */
	:: atomic {
		if
		:: C(0, i)?k, r, fl, v, d -> src = 0
		:: C(1, i)?k, r, fl, v, d -> src = 1
#if N > 2
		:: C(2, i)?k, r, fl, v, d -> src = 2
#endif
		fi;
		started = false;
		if
		/* cache side */
		:: k == ReadData ->
			assert(pend[i] == 1 && (fl & HASDATA));
			st[i] = S; val[i] = d; ver[i] = v; pend[i] = 0; home[i] = src
		:: k == WriteGrant ->
			assert(pend[i] == 2);
			if
			:: fl & HASDATA -> val[i] = d
			:: else -> assert(st[i] == S && ver[i] + 1 == v)
			fi;
			st[i] = M; ver[i] = v; pend[i] = 0; home[i] = src;
			if
			:: fl & HOME -> /* take the home: the copy becomes the memory */
				assert(src != i);
				home[i] = i; owner[i] = i; sharers[i] = 0; version[i] = v; mem[i] = val[i]
			:: else -> skip
			fi
		:: k == Inv ->
			assert(st[i] != M);
			st[i] = I; home[i] = src;
			send(i, src, InvAck, r, 0, v, 0)
		:: k == Fetch || k == FetchInv ->
			assert(st[i] != S);
			home[i] = src;
			if
			:: st[i] == M && k == Fetch ->
				st[i] = S; send(i, src, FetchReply, r, HASDATA | KEPT, ver[i], val[i])
			:: st[i] == M && k == FetchInv ->
				st[i] = I; send(i, src, FetchReply, r, HASDATA, ver[i], val[i])
			:: else -> /* written back already: the writeback overtook the fetch */
				send(i, src, FetchReply, r, 0, v, 0)
			fi
		/* home side: a request for a page homed elsewhere now is passed on */
#ifdef BUG_NO_FORWARD
		:: (k == ReadReq || k == WriteReq) && home[i] != i && busy[i] -> waitq[i]!k, r, fl, v
		:: (k == ReadReq || k == WriteReq) && home[i] != i && !busy[i] -> started = true
#else
		:: (k == ReadReq || k == WriteReq) && home[i] != i ->
			assert(home[i] != r);
#ifdef REACH_FORWARD
			assert(false); /* shows the search passes requests on */
#endif
			send(i, home[i], k, r, fl, v, d)
#endif
		:: (k == ReadReq || k == WriteReq) && home[i] == i && busy[i] -> waitq[i]!k, r, fl, v
		:: (k == ReadReq || k == WriteReq) && home[i] == i && !busy[i] -> started = true
		:: k == InvAck ->
			assert(home[i] == i && busy[i] && (acks[i] & (1 << src)));
			acks[i] = acks[i] & ~(1 << src)
		:: k == FetchReply ->
			assert(home[i] == i && busy[i] && waitData[i] && dataFrom[i] == src);
			if
			:: fl & HASDATA -> assert(v == version[i]); mem[i] = d
			:: else -> assert(gotWB[i])
			fi;
			waitData[i] = false; gotWB[i] = false; dataFrom[i] = NONE; owner[i] = NONE;
			if
			:: txk[i] == ReadReq && (fl & KEPT) -> sharers[i] = sharers[i] | (1 << src)
			:: else -> skip
			fi
		:: k == Writeback ->
			assert(home[i] == i && owner[i] == src && (fl & HASDATA) && v == version[i]);
			mem[i] = d; owner[i] = NONE;
			if
			:: busy[i] && waitData[i] && dataFrom[i] == src -> gotWB[i] = true
			:: else -> skip
			fi
		fi;
		/* start the request in k/r (if started), then grant what can be
		 * granted, then serve queued requests */
		do
		:: started ->
			started = false;
			assert(owner[i] != r);
			busy[i] = true; txk[i] = k; txreq[i] = r;
			txcan[i] = (k == WriteReq && (fl & CANHOME));
			if
			:: owner[i] != NONE ->
				waitData[i] = true; gotWB[i] = false; dataFrom[i] = owner[i];
				if
				:: k == WriteReq -> send(i, owner[i], FetchInv, r, 0, version[i], 0)
				:: else -> send(i, owner[i], Fetch, r, 0, version[i], 0)
				fi
			:: else -> skip
			fi;
			if
			:: k == WriteReq ->
				txhave[i] = (owner[i] == NONE && (fl & HAVECOPY) && (sharers[i] & (1 << r)) && v == version[i]);
				acks[i] = sharers[i] & ~(1 << r);
				n = 0;
				do
				:: n < N ->
					if
					:: acks[i] & (1 << n) -> send(i, n, Inv, r, 0, version[i], 0)
					:: else -> skip
					fi;
					n++
				:: else -> break
				od
			:: else -> skip
			fi
		:: !started && home[i] == i && busy[i] && acks[i] == 0 && !waitData[i] ->
			/* complete */
			if
			:: txk[i] == ReadReq ->
				sharers[i] = sharers[i] | (1 << txreq[i]);
				send(i, txreq[i], ReadData, txreq[i], HASDATA, version[i], mem[i])
			:: else ->
				version[i]++; owner[i] = txreq[i]; sharers[i] = 0;
				fl = 0;
				if
				:: !txhave[i] -> fl = HASDATA
				:: else -> skip
				fi;
				if
				:: txcan[i] && txreq[i] != i && empty(waitq[i]) && moves < MOVES -> fl = fl | HOME
				:: true -> skip
				fi;
				send(i, txreq[i], WriteGrant, txreq[i], fl, version[i], mem[i]);
				if
				:: fl & HOME -> /* hand the home on: its own copy is gone */
					assert(st[i] == I);
					moves++;
					home[i] = txreq[i];
					owner[i] = NONE; sharers[i] = 0; mem[i] = 0
				:: else -> skip
				fi
			fi;
			busy[i] = false; txhave[i] = false; txcan[i] = false
		:: !started && home[i] == i && !busy[i] && nempty(waitq[i]) ->
			waitq[i]?k, r, fl, v; started = true
		:: !started && !(home[i] == i && busy[i] && acks[i] == 0 && !waitData[i]) && (home[i] != i || busy[i] || empty(waitq[i])) -> break
		od;
		k = 0; r = 0; fl = 0; v = 0; d = 0; n = 0; src = 0; /* dead locals out of the state vector */
		swmr() }
	od
}

#ifdef LIVENESS
/* Every fault node 0 takes is served, however the home moves: it does
 * not stay pending for ever (a request does not chase the home). */
ltl served { [] ((pend[0] != 0) -> <> (pend[0] == 0)) }
#endif

/* When nothing can move any more, every request must have been answered,
 * every channel drained, and exactly one node must home the page:
 * otherwise the protocol deadlocked or lost the home. */
active proctype Watchdog() {
	byte j = 0, homes = 0;
	timeout ->
	do
	:: j < N ->
		assert(pend[j] == 0 && !busy[j] && empty(waitq[j]));
		assert(empty(C(j, 0)) && empty(C(j, 1)));
#if N > 2
		assert(empty(C(j, 2)));
#endif
		if
		:: home[j] == j -> homes++
		:: else -> skip
		fi;
		j++
	:: else -> break
	od;
	assert(homes == 1)
}

init {
	atomic {
		byte j = 0;
		do
		:: j < N ->
			st[j] = I; home[j] = 0; owner[j] = NONE; dataFrom[j] = NONE;
			j++
		:: else -> break
		od;
		/* node 0 homes the page at start, holding it Shared */
		st[0] = S; sharers[0] = 1;
		j = 0;
		do
		:: j < N -> run Node(j); j++
		:: else -> break
		od
	}
}
