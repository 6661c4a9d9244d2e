// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

//go:build tamago

package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/big-iron/big-iron/console/metrics"
)

// serveMetrics serves the node's metrics over HTTP on its control-plane
// address, at the port the command line gives (bigiron.metrics), if it
// has both.
func serveMetrics(nn *nodeNet, src metrics.Sources) {
	if nn.stack == nil || nn.metricsPort == 0 {
		return
	}
	l, err := nn.stack.ListenTCP(nn.metricsPort)
	if err != nil {
		fmt.Printf("metrics: %v\n", err)
		return
	}
	srv := &http.Server{
		Handler:           src.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	go func() {
		if err := srv.Serve(l); err != nil {
			fmt.Printf("metrics: %v\n", err)
		}
	}()
	fmt.Printf("metrics: http://%v:%d/metrics\n", nn.stack.Addr().Addr(), nn.metricsPort)
}
