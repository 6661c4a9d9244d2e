// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

// Command cluster starts a big-iron cluster of emulated nodes on this host
// (`make cluster NODES=3 EMU=qemu`): every node on one Ethernet segment,
// the operator on the first node's serial console, the other consoles
// logged to BUILD/cluster/nodeN/console.log. Leaving the first node's
// console (QEMU: its exit; Bochs: Ctrl-C) stops them all.
//
// With -guest linux (`make cluster NODES=2 EMU=bochs GUEST=linux`, an
// image built with the guest) it then types the demo's first commands
// itself, showing each: it starts Debian's Linux as one VM with a vCPU
// per node, attaches node 1's console to the guest and, once the guest's
// shell runs, moves vCPU i to node i+1 from that node's console. The
// operator takes over node 1's console, attached to the guest (Ctrl-]
// detaches to the hyperkernel shell).
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/big-iron/big-iron/tools/cluster/launch"
	"github.com/big-iron/big-iron/tools/cluster/serial"
)

// options are the command's flags.
type options struct {
	nodes, segment, cpus, mem int
	emu, build, key, guest    string
	accel                     string // auto, kvm or tcg
	dvmArgs                   string // more `dvm start` arguments, with guest
}

// parseOptions reads the command line.
func parseOptions() options {
	var o options
	flag.IntVar(&o.nodes, "nodes", 2, "number of nodes (1 to 6)")
	flag.StringVar(&o.emu, "emu", "qemu", "emulator: qemu or bochs")
	flag.StringVar(&o.build, "build", "build", "build directory holding bigiron.elf and bigiron.mb")
	flag.IntVar(&o.segment, "segment", 41000+os.Getpid()%1000*4, "multicast port (qemu) or bxhub base port (bochs)")
	flag.IntVar(&o.cpus, "cpus", 1, "cores per node")
	flag.IntVar(&o.mem, "mem", 1024, "MiB of memory per node (at least 1024: the image keeps 256 MiB from 256 MiB up)")
	flag.StringVar(&o.key, "key", "", "cluster key, 64 hex digits (default: the development key)")
	flag.StringVar(&o.guest, "guest", "", "linux: start the image's Linux guest across the nodes, a vCPU on each")
	flag.StringVar(&o.accel, "accel", "auto", "QEMU accelerator: kvm, tcg, or auto (kvm where the host has hardware KVM)")
	flag.StringVar(&o.dvmArgs, "dvm", "", "with -guest: more `dvm start` arguments (e.g. numa=on move=hysteresis)")
	flag.Parse()
	return o
}

func main() {
	o := parseOptions()
	log.SetFlags(0)
	log.SetPrefix("cluster: ")
	c := launch.Cluster{Nodes: o.nodes, Segment: o.segment, CPUs: o.cpus, MemMiB: o.mem, Key: o.key}
	if err := c.Check(); err != nil {
		log.Fatal(err)
	}
	switch o.accel {
	case "auto", "kvm", "tcg":
	default:
		log.Fatalf("unknown accelerator %q (auto, kvm or tcg)", o.accel)
	}
	if o.emu == "qemu" && o.accel == "auto" {
		o.accel = "tcg"
		if err := launch.KVM("/dev/kvm", "/sys"); err == nil {
			o.accel = "kvm"
		} else {
			log.Printf("QEMU's TCG, not KVM: %v", err)
		}
	}
	if o.emu == "bochs" || o.accel == "tcg" {
		c.FailureTimeout = emulatedFailureTimeout(c.Nodes*c.CPUs, runtime.NumCPU())
	}
	demo := demoSteps(c, o)
	dir := filepath.Join(o.build, "cluster")
	var ps processes
	defer ps.stopAll()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	go func() { <-sig; ps.stopAll(); os.Exit(1) }()

	switch o.emu {
	case "qemu":
		runQEMU(c, o, demo, dir, &ps)
	case "bochs":
		runBochs(c, o, demo, dir, &ps)
	default:
		log.Fatalf("unknown emulator %q (qemu or bochs)", o.emu)
	}
}

// emulatedFailureTimeout is the failure timeout (bigiron.failtimeout)
// for cores emulated cores, each an emulator thread, on a host with
// host cores: the membership's default while every emulated core has a
// host core, 2 s beyond, where a node's silence is its emulator waiting
// for a core (three QEMU nodes on two cores went silent for up to
// 291 ms while idle).
func emulatedFailureTimeout(cores, host int) time.Duration {
	if cores <= host {
		return 0
	}
	return 2 * time.Second
}

// demoSteps are the steps the command types for -guest: none without.
func demoSteps(c launch.Cluster, o options) []launch.Step {
	switch o.guest {
	case "":
		return nil
	case "linux":
		emu := o.emu
		if emu == "qemu" && o.accel == "kvm" {
			emu = "kvm"
		}
		return c.LinuxDemo(emu, o.dvmArgs)
	}
	log.Fatalf("unknown guest %q (linux)", o.guest)
	return nil
}

// processes are the emulators (and hub) the command started.
type processes []*exec.Cmd

// stopAll kills every process started and waits for it.
func (ps *processes) stopAll() {
	for _, p := range *ps {
		if p.Process != nil {
			p.Process.Kill()
			p.Wait()
		}
	}
}

// runQEMU runs the cluster in QEMU, the last node first. Without a demo
// node 1 runs on the terminal, the others with their consoles logged;
// with one, every console is a pipe the demo types on.
func runQEMU(c launch.Cluster, o options, demo []launch.Step, dir string, ps *processes) {
	accel := launch.Accel(o.accel == "kvm")
	elf := filepath.Join(o.build, "bigiron.elf")
	consoles := make([]*serial.Console, c.Nodes+1)
	for i := c.Nodes; i >= 1; i-- {
		cmd := exec.Command("qemu-system-x86_64", c.QEMU(i, elf, accel)...)
		if i == 1 && demo == nil {
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			fmt.Fprintf(os.Stderr, "cluster: %d QEMU nodes on multicast segment 230.0.0.1:%d; you are on node 1 (quit QEMU with Ctrl-A X is not wired: use `halt`)\n", c.Nodes, c.Segment)
			if err := cmd.Run(); err != nil {
				log.Printf("node 1: %v", err)
			}
			return
		}
		if demo == nil {
			*ps = append(*ps, startLogged(cmd, launch.NodeDir(dir, i), "console.log"))
			continue
		}
		consoles[i] = startPiped(cmd, dir, i, ps)
	}
	fmt.Fprintf(os.Stderr, "cluster: %d QEMU nodes on multicast segment 230.0.0.1:%d; you are on node 1 (`halt` or Ctrl-C stops all)\n", c.Nodes, c.Segment)
	attach(consoles, demo)
}

// startPiped starts QEMU node i with its console on pipes, for the demo
// to type on: its output goes to the terminal for node 1, to its log for
// the others.
func startPiped(cmd *exec.Cmd, dir string, i int, ps *processes) *serial.Console {
	in, err := cmd.StdinPipe()
	if err != nil {
		log.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatalf("node %d: %v", i, err)
	}
	*ps = append(*ps, cmd)
	return serial.NewConsole(io.TeeReader(out, nodeLog(dir, i)), in)
}

// runBochs runs the cluster in Bochs: bxhub for the Ethernet segment,
// then every node with its console on a socket.
func runBochs(c launch.Cluster, o options, demo []launch.Step, dir string, ps *processes) {
	hub := exec.Command("bxhub", c.BochsHub()...)
	*ps = append(*ps, startLogged(hub, filepath.Join(dir, "bxhub"), "console.log"))
	consoles := make([]*serial.Console, c.Nodes+1)
	for i := 1; i <= c.Nodes; i++ {
		consoles[i] = startBochsNode(c, o.build, dir, i, ps)
	}
	fmt.Fprintf(os.Stderr, "cluster: %d Bochs nodes on bxhub ports %d+; you are on node 1 (Ctrl-C stops all)\n", c.Nodes, c.Segment)
	attach(consoles, demo)
}

// startBochsNode starts Bochs node i from its own ISO, continuing at
// once past Bochs' debugger prompt, and connects to its console.
func startBochsNode(c launch.Cluster, build, dir string, i int, ps *processes) *serial.Console {
	nd := launch.NodeDir(dir, i)
	iso, err := c.NodeISO(i, filepath.Join(build, "bigiron.mb"), nd)
	if err != nil {
		log.Fatal(err)
	}
	port := c.Segment + 100 + 2*i
	cmd := exec.Command("bochs", c.Bochs(i, "qemu/bochsrc.txt", iso, filepath.Join(nd, "bochs.log"), port, port+1)...)
	rc := filepath.Join(nd, "bochs.rc")
	if err := os.WriteFile(rc, []byte("c\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	cmd.Args = append(cmd.Args[:1], append([]string{"-rc", rc}, cmd.Args[1:]...)...)
	*ps = append(*ps, startLogged(cmd, nd, "bochs.out"))
	conn := dial(port)
	return serial.NewConsole(io.TeeReader(conn, nodeLog(dir, i)), conn)
}

// nodeLog is where node i's console output goes: the terminal for node
// 1, BUILD/cluster/nodeN/console.log for the others (QEMU's own messages
// go there too; Bochs' go to bochs.out).
func nodeLog(dir string, i int) io.Writer {
	if i == 1 {
		return os.Stdout
	}
	nd := launch.NodeDir(dir, i)
	if err := os.MkdirAll(nd, 0o755); err != nil {
		log.Fatal(err)
	}
	f, err := os.Create(filepath.Join(nd, "console.log"))
	if err != nil {
		log.Fatal(err)
	}
	return f
}

// attach plays the demo's steps, if any, then puts the operator on node
// 1's console until it ends.
func attach(consoles []*serial.Console, demo []launch.Step) {
	if demo != nil {
		if err := launch.Play(demo, consoles, os.Stderr); err != nil {
			log.Printf("%v; the console is yours", err)
		} else {
			fmt.Fprintln(os.Stderr, "\ncluster: the guest runs with a vCPU on every node; you are on its console (Ctrl-] for node 1's shell: vcpus, pages, migrate VCPU NODE, dvm stat)")
		}
	}
	go io.Copy(consoles[1], os.Stdin)
	<-consoles[1].Done()
}

// startLogged starts cmd with its output in dir/name.
func startLogged(cmd *exec.Cmd, dir, name string) *exec.Cmd {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		log.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	return cmd
}

// dial connects to a Bochs socket console, waiting for Bochs to listen.
func dial(port int) net.Conn {
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			log.Fatalf("console on port %d: %v", port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
