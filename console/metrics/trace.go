// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package metrics

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/big-iron/big-iron/cluster/trace"
)

// tracePoll is how often a followed trace looks for new events.
const tracePoll = 200 * time.Millisecond

// serveTrace streams the node's events as JSON lines (trace.Event's
// AppendJSON), oldest first: GET /trace?kind=K&vcpu=N&from=SEQ; with
// follow=1 it goes on sending new events until the client leaves.
func (s Sources) serveTrace(w http.ResponseWriter, req *http.Request) {
	if s.Trace == nil {
		http.Error(w, "this node records no events", http.StatusNotFound)
		return
	}
	f, from, follow, err := traceQuery(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	flusher, _ := w.(http.Flusher)
	var evs []trace.Event
	var line []byte
	for {
		evs, from = s.Trace.Events(evs[:0], from, f, 0)
		for i := range evs {
			line = append(evs[i].AppendJSON(line[:0]), '\n')
			if _, err := w.Write(line); err != nil {
				return
			}
		}
		if !follow {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-req.Context().Done():
			return
		case <-time.After(tracePoll):
		}
	}
}

// traceQuery reads /trace's parameters.
func traceQuery(req *http.Request) (f trace.Filter, from uint64, follow bool, err error) {
	q := req.URL.Query()
	if k := q.Get("kind"); k != "" {
		if f.Kind, err = trace.ParseKind(k); err != nil {
			return
		}
	}
	if v := q.Get("vcpu"); v != "" {
		n, perr := strconv.ParseInt(v, 10, 32)
		if perr != nil {
			return f, 0, false, fmt.Errorf("vcpu=%q: want a number", v)
		}
		vcpu := int32(n)
		f.VCPU = &vcpu
	}
	if v := q.Get("from"); v != "" {
		if from, err = strconv.ParseUint(v, 10, 64); err != nil {
			return f, 0, false, fmt.Errorf("from=%q: want an event number", v)
		}
	}
	follow = q.Get("follow") == "1"
	return f, from, follow, nil
}
