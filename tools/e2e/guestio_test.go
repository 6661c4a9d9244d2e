// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"bytes"
	"cmp"
	"crypto/md5"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/big-iron/big-iron/netstack/nbd/nbdtest"
	"github.com/big-iron/big-iron/tools/cluster/launch"
	"github.com/big-iron/big-iron/tools/cluster/serial"
)

// nbdServer is Debian's qemu-nbd serving one raw file on the host's
// loopback, which QEMU's user network shows its guests as 10.0.2.2.
type nbdServer struct {
	*nbdtest.Server
	file string
	port int
}

// startNBD serves a new file of size bytes as export "d".
func startNBD(t *testing.T, size int64) *nbdServer {
	t.Helper()
	s, file := nbdtest.QEMU(t, size, "d")
	port, _ := strconv.Atoi(s.Port())
	return &nbdServer{Server: s, file: file, port: port}
}

// serveNBD serves file as export.
func serveNBD(t *testing.T, file, export string) *nbdServer {
	t.Helper()
	s := nbdtest.QEMUFile(t, file, export)
	port, _ := strconv.Atoi(s.Port())
	return &nbdServer{Server: s, file: file, port: port}
}

// serveBlob serves blob over HTTP on the host's loopback and returns the
// port.
func serveBlob(t *testing.T, blob []byte) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(blob) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// serveDir serves the files of dir over HTTP on the host's loopback and
// returns the port; it counts the requests that found a file.
func serveDir(t *testing.T, dir string, served *atomic.Int32) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(dir))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(filepath.Join(dir, filepath.Clean("/"+r.URL.Path))); err == nil {
			served.Add(1)
		}
		files.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// TestQEMULinuxGuestIO gives Debian's kernel on one AMD-V node (QEMU TCG)
// a disk on the host's NBD server and a network card bridged onto the
// node's NIC, on QEMU's user network with the host behind it: the guest
// gets its own address by DHCP, fetches a file from the host over HTTP,
// writes it to the disk (the host then finds it in the server's file),
// reads it back past its page cache, and goes on writing while the
// server is killed and restarted, its data intact. The node's metrics
// (read with Prometheus' parser through a forwarded port) show the VM,
// its disk's traffic and reconnection and its card's frames, and the
// operator's key logs in to the node's shell over SSH where another key
// is refused.
func TestQEMULinuxGuestIO(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	nbd := startNBD(t, 64<<20)
	blob := make([]byte, 1<<20)
	rand.Read(blob)
	httpPort := serveBlob(t, blob)
	dir := buildGuestImage(t)
	metricsPort, sshPort := freePort(t), freePort(t)
	key, keyWord := operatorKey(t)
	n := bootQEMU(t, "-machine", "q35", "-cpu", "max", "-smp", "2", "-m", "2G",
		"-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-10.0.2.15:9120,hostfwd=tcp:127.0.0.1:%d-10.0.2.15:22", metricsPort, sshPort),
		"-device", "e1000,netdev=n0",
		"-kernel", filepath.Join(dir, "bigiron.elf"), "-append", "bigiron.ip=dhcp "+keyWord)
	if _, err := n.con.Expect(prompt, 2*time.Minute); err != nil {
		t.Fatalf("no prompt: %v\n%s", err, n.con.Output())
	}
	out := run(t, n, fmt.Sprintf("vm boot linux mem=256M disk=nbd://10.0.2.2:%d/d net=on", nbd.port), 2*time.Minute)
	if !strings.Contains(out, "started") {
		t.Fatalf("vm boot with an NBD disk and a NIC:\n%s", out)
	}
	if err := n.con.Send("console"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.con.Expect(guestReady, 10*time.Minute); err != nil {
		t.Fatalf("the guest did not reach its shell: %v\n%s", err, n.con.Output())
	}
	checkGuestIO(t, n, nbd, blob, httpPort, "", 3*time.Minute)

	// Back in the hyperkernel's shell: the disk and its reconnection.
	if _, err := n.con.Write([]byte{0x1D}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.con.Expect("[detached from vm 1]", time.Minute); err != nil {
		t.Fatalf("detach: %v\n%s", err, n.con.Output())
	}
	out = run(t, n, "disks", time.Minute)
	if !strings.Contains(out, fmt.Sprintf("nbd://10.0.2.2:%d/d", nbd.port)) || !regexp.MustCompile(`reconnects [1-9]`).MatchString(out) {
		t.Errorf("disks:\n%s", out)
	}
	t.Logf("disks:\n%s", out)
	if st := run(t, n, "vm stat 1", time.Minute); !regexp.MustCompile(`network card 0a:b1:\S+: received [1-9]\d* frames .*, sent [1-9]`).MatchString(st) {
		t.Errorf("vm stat 1 shows no traffic on the guest's card:\n%s", st)
	}
	checkMetrics(t, metricsPort, []metricWant{
		{"bigiron_vm_running", map[string]string{"vm": "1"}, 1, 1},
		{"bigiron_vm_exits_total", map[string]string{"vm": "1"}, 1000, -1},
		{"bigiron_disk_bytes_total", map[string]string{"vm": "1", "disk": "vda", "dir": "write"}, 2 << 20, -1},
		{"bigiron_disk_reconnects_total", map[string]string{"vm": "1", "disk": "vda"}, 1, -1},
		{"bigiron_vm_net_frames_total", map[string]string{"vm": "1", "dir": "rx"}, 1, -1},
		{"bigiron_cluster_members", nil, 1, 1},
	})
	checkNodeSSH(t, n, sshPort, key)
	if bad := badBootLines.FindAllString(n.con.Output(), -1); len(bad) > 0 {
		t.Errorf("the guest's log:\n%s", strings.Join(bad, "\n"))
	}
}

// checkGuestIO runs, in the guest whose console n shows, the network and
// disk checks: an address of its own by DHCP, a file from the host over
// HTTP, the file written to the NBD disk (found in the server's file),
// read back past the page cache, and written again across a restart of
// the server. pin goes before each command that moves the file (oncpu
// N, to run it on vCPU N), and how long the first write and read took
// is logged (the host's clock, the guest's serial line's round trip
// included).
func checkGuestIO(t *testing.T, n *node, nbd *nbdServer, blob []byte, httpPort int, pin string, timeout time.Duration) {
	t.Helper()
	sum := fmt.Sprintf("%x", md5.Sum(blob))
	shellPrompt, guest := guestShell(t, n, timeout)
	shellPrompt()

	// The network: an address of its own from the LAN's DHCP server, and
	// a file from the host.
	guest("dhclient -ipv6=false eth0", "Finished trying")
	if m := regexp.MustCompile(`inet (10\.0\.2\.\d+)`).FindStringSubmatch(guest("ip addr show eth0; echo ipdone", "\nipdone")); m == nil || m[1] == "10.0.2.15" {
		t.Fatalf("the guest has no address of its own from QEMU's DHCP server (the node has 10.0.2.15): %v", m)
	}
	start := time.Now()
	guest(fmt.Sprintf("%swget -O /tmp/b http://10.0.2.2:%d/b; echo got", pin, httpPort), "\ngot")
	fetched := time.Since(start)
	guest(pin+"md5sum /tmp/b", sum)

	// The disk: written, found by the host in the server's file, read
	// back past the guest's page cache.
	start = time.Now()
	guest(pin+"dd if=/tmp/b of=/dev/vda bs=64K && sync && echo w1", "\nw1")
	written := time.Since(start)
	disk, err := os.ReadFile(nbd.file)
	if err != nil || !bytes.Equal(disk[:len(blob)], blob) {
		t.Errorf("the NBD server's file does not hold what the guest wrote (%v)", err)
	}
	start = time.Now()
	guest("echo 3 > /proc/sys/vm/drop_caches; "+pin+"dd if=/dev/vda bs=64K count=16 | md5sum", sum)
	t.Logf("%d KiB %s: fetched over HTTP in %v, written to the disk and synced in %v, read back in %v",
		len(blob)>>10, cmp.Or(pin, "(not pinned)"), fetched.Round(time.Millisecond), written.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// The server dies while the guest writes: the write stalls, then
	// completes once it is back.
	nbd.Kill()
	if err := n.con.Send(pin + "dd if=/tmp/b of=/dev/vda bs=64K seek=16 && sync && echo w2"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	nbd.Start()
	nbd.Ready()
	if _, err := n.con.Expect("\nw2", timeout); err != nil {
		t.Fatalf("the write did not complete after the server came back: %v\n%s", err, n.con.Output())
	}
	shellPrompt()
	disk, err = os.ReadFile(nbd.file)
	if err != nil || !bytes.Equal(disk[len(blob):2*len(blob)], blob) {
		t.Errorf("what the guest wrote across the server's restart is not in its file (%v)", err)
	}

	// The driver lets go of the disk and takes it again: Linux resets
	// the device (its reset write settles the device's worker, see
	// devices.Settler) and sets the queues up anew; the disk still
	// reads what was written.
	m := boundVirtioDisk(t, guest)
	guest(fmt.Sprintf("echo %s > %s/unbind && echo unbound", m, virtioBlkDriver), "\nunbound")
	guest(fmt.Sprintf("echo %s > %s/bind && echo bound", m, virtioBlkDriver), "\nbound")
	guest("echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=64K count=16 | md5sum", sum)
}

// TestQEMUClusterLinuxGuestIO runs the guest I/O checks of
// TestQEMULinuxGuestIO in one Linux VM across two AMD-V QEMU nodes with a
// vCPU on each: node 1, the device node, has the cluster on one NIC and
// its control plane and the guest's network card on a second one
// (bigiron.uplink=1) on QEMU's user network, where the host's NBD and
// HTTP servers are. The file moves from vCPU 1, on node 2: the guest's
// shell stays on vCPU 0 (isolcpus), and oncpu runs each command that
// fetches, writes or reads it on vCPU 1, so the disk's and the card's
// requests, their data and their interrupts cross the nodes. The guest
// runs with numa=on homes=fill: each node homes one range of its memory,
// which its SRAT makes that node's proximity domain, and the test checks
// the guest sees both domains with their memory and CPUs.
func TestQEMUClusterLinuxGuestIO(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	nbd := startNBD(t, 64<<20)
	blob := make([]byte, 1<<20)
	rand.Read(blob)
	httpPort := serveBlob(t, blob)
	dir := buildGuestImage(t)
	c := launch.Cluster{Nodes: 2, Segment: 47000 + os.Getpid()%1000*2, CPUs: 1, MemMiB: 1024}
	elf := filepath.Join(dir, "bigiron.elf")
	args := c.QEMU(1, elf, launch.Accel(false))
	for i, a := range args {
		if a == c.CommandLine(1) {
			args[i] = strings.Replace(a, "bigiron.ip="+launch.IP(1)+"/24", "bigiron.ip=dhcp bigiron.uplink=1", 1)
		}
	}
	args = append(args, "-netdev", "user,id=n1", "-device", "e1000,netdev=n1")
	nodes := []*node{nil, bootQEMU(t, args...), bootQEMU(t, c.QEMU(2, elf, launch.Accel(false))...)}
	// The demo's steps: the shells, the membership, dvm start with the
	// disk and the card, the guest's shell, vCPU 1 to node 2.
	steps := c.LinuxDemo("qemu", fmt.Sprintf("disk=nbd://10.0.2.2:%d/d net=on homes=fill numa=on", nbd.port))
	var log strings.Builder
	if err := launch.Play(steps, []*serial.Console{nil, nodes[1].con, nodes[2].con}, &log); err != nil {
		t.Fatalf("the demo's commands: %v\n%s\nnode 1:\n%s", err, log.String(), nodes[1].con.Output())
	}
	if boot := nodes[1].con.Output(); !strings.Contains(boot, "network: DHCP lease 10.0.2.15/24") || !strings.Contains(boot, "the cluster alone on") {
		t.Fatalf("node 1 has no control plane of its own on the second NIC:\n%s", boot)
	}
	for deadline := time.Now().Add(5 * time.Minute); !regexp.MustCompile(`(?m)^1\s+2\s`).MatchString(run(t, nodes[2], "vcpus dvm", time.Minute)); time.Sleep(2 * time.Second) {
		if time.Now().After(deadline) {
			t.Fatal("vCPU 1 did not move to node 2")
		}
	}
	checkGuestIO(t, nodes[1], nbd, blob, httpPort, "oncpu 1 ", 15*time.Minute)
	checkNUMADomains(t, nodes[1], 2)
	// The guest's page walks went on in walk windows, as dvm start does
	// for Linux unless told walkwin=off: without them this test's I/O
	// took 15-30 times as long (one run each, 2026-12-06: the file's
	// fetch 2m8s against 8.9 s, its write 29 s against 4.8 s).
	detach(t, nodes[1])
	for i := 1; i <= 2; i++ {
		stat := run(t, nodes[i], "dvm stat", time.Minute)
		t.Logf("node %d: dvm stat:\n%s", i, stat)
		if w := regexp.MustCompile(`walk windows: (\d+) opened`).FindStringSubmatch(stat); i == 2 && (w == nil || w[1] == "0") {
			t.Errorf("node 2 opened no walk window for the guest's page walks")
		}
	}
	if bad := guestCrash.FindAllString(nodes[1].con.Output(), -1); len(bad) > 0 {
		t.Errorf("the guest's log has %d crash lines:\n%s", len(bad), strings.Join(bad, "\n"))
	}
}

// virtioBlkDriver is the guest's sysfs directory of Linux's virtio_blk
// driver, whose bind and unbind files take a device's name.
const virtioBlkDriver = "/sys/bus/virtio/drivers/virtio_blk"

// boundVirtioDisk returns the name (virtioN) of the virtio device bound
// to virtio_blk in the guest whose shell guest drives.
func boundVirtioDisk(t *testing.T, guest func(line, want string) string) string {
	t.Helper()
	dev := regexp.MustCompile(`\bvirtio\d+\b`).FindString(guest("ls "+virtioBlkDriver+"; echo lsdone", "\nlsdone"))
	if dev == "" {
		t.Fatal("no virtio device bound to virtio_blk")
	}
	return dev
}

// checkNUMADomains checks, at the guest's shell on n (its prompt read),
// that a guest of
// numa=on homes=fill across nodes nodes sees one NUMA node per node, each
// with memory (its node's range) and CPU i in node i.
func checkNUMADomains(t *testing.T, n *node, nodes int) {
	t.Helper()
	_, guest := guestShell(t, n, 5*time.Minute)
	// Short lines: a line the terminal wraps can show the text waited
	// for in its own echo.
	guest("cd /sys/devices/system/node; echo in", "\nin")
	for i := 0; i < nodes; i++ {
		out := guest(fmt.Sprintf("cat node%d/cpulist node%d/meminfo; echo numa%d", i, i, i), fmt.Sprintf("\nnuma%d", i))
		m := regexp.MustCompile(`Node \d+ MemTotal:\s+(\d+) kB`).FindStringSubmatch(out)
		if m == nil || atoi(m[1]) < 8<<10 || !regexp.MustCompile(fmt.Sprintf(`(?m)^\s*%d\s*$`, i)).MatchString(out) {
			t.Fatalf("NUMA node %d of the guest: want CPU %d and its node's memory:\n%s", i, i, out)
		}
		t.Logf("NUMA node %d: CPU %d, %s kB", i, i, m[1])
	}
}
