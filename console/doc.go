// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Package console holds every command of the hyperkernel shell: the
// machine (version, cpus, mem, uptime, halt, reboot, vmx, svm), VMs (vm,
// console, vcpus), distributed VMs (dvm, pages, migrate), the cluster
// (nodes, node) and the network (ifconfig, ping, netstat). A command
// parses its arguments (key=value ones with Args, the one parser), calls
// the service's plain methods, and prints what they return; the services
// (machine/board, vmm/vmx, vmm/svm, hyperkernel/hv, cluster/node, netstack/ipstack) know
// nothing of the shell. Package console/shell is the line interpreter the
// commands register with.
package console
