// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"bufio"
	"crypto/md5"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/big-iron/big-iron/tools/cluster/launch"
	"github.com/big-iron/big-iron/tools/cluster/serial"
	"golang.org/x/crypto/ssh"
)

// TestQEMUClusterLinuxRootFS is the guest-I/O issue's acceptance run:
// one Linux VM across two AMD-V QEMU nodes (TCG) whose image carries no
// guest. Node 1, the device node, has the cluster on one NIC and its
// control plane and the guest's card on a second one on QEMU's user
// network, where the host's servers are: HTTP for the kernel and the
// initramfs (dvm start kernel= initrd=), qemu-nbd for the guest's
// Debian root (make rootfs) and for a data disk. The guest starts
// systemd from its NBD root; then its vCPU 1 moves to node 2, and with a
// vCPU on each node it gets its address by DHCP and the host logs in
// over ssh through a port QEMU forwards. From vCPU 1 (node 2) it writes
// the data disk block by block while the data disk's server is killed
// and restarted: the loop resumes, and every block it reported written
// reads back intact (checksums, in the guest and in the server's file).
// It measures the network and the disk from vCPU 1, writes a file and
// syncs, stops the VM, finds the file in the server's image, starts the
// VM again and finds it there too.
//
// Its first run failed: Debian's systemd started with both vCPUs on
// node 1; after vCPU 1 moved to node 2, node 2's cluster transport found
// its window to node 1 full for 5 s ("send queue full") while sending the
// guest clock, vCPU 1 stalled there (RCU stalls on CPU 1, TLB shootdowns
// from CPU 0 waiting for it) and ssh never answered in 30 minutes. The
// busybox guest of TestQEMUClusterLinuxGuestIO does its I/O across the
// same two nodes. With two cores a node (its second run) the transport
// held, but vCPU 1 then spent 30 minutes in page ping-pong, 446 remote
// faults a second of 2.7 ms each, two thirds of them QEMU's guest
// page-table walks asking for write access (see TestQEMUClusterLinuxAMDV),
// the rest on two pages of kernel data (gpa 0x2a15000, 0x2a16000) both
// vCPUs write; ssh never answered. With walkwin=on (one run, 2026-12-06)
// the walks stayed local (168 of node 2's 520,703 faults) but the
// kernel's tick data crossed instead (the page of jiffies_64, 0x2a07000,
// and 0x3fd4000, 0x3fd6000: over 100,000 faults each), and ssh again did
// not answer in 30 minutes. The guest's CPUID lacked ARAT, so its CPUs
// never left periodic ticks; with ARAT (and walkwin=on) root logged in
// 5m17s after dvm start, but after the data server's restart every
// block failed with I/O errors (the NBD client found no connection in
// its timeout; one lost dial could use it all up, see TestLostDial); with the dilation on AMD-V mended too, login came after
// 2m59s and the write loop resumed and finished, all blocks intact;
// fio then took 5m19s to write 64 MiB from vCPU 1 (2026-12-06). In
// the next run (login after 2m58s) the loop wrote 4 blocks in 10
// minutes, the disks healthy: both nodes waited most for the same two
// pages (gpa 0xf532000 and 0xf538000, about 7,000 faults each), the
// pattern of TestPagesNeededTogetherReachBothNodes. With walk windows
// on by default and device DMA batched, it passed whole for the first
// time (2026-12-06, 34m21s): login after 2m49s, the write loop's 48
// blocks intact across the restart, the file kept across dvm stop.
func TestQEMUClusterLinuxRootFS(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	requireQEMUDistLinux(t)
	img, key := buildRootFS(t)
	signer := sshSigner(t, key)
	files := buildGuestFiles(t)
	dir := buildImage(t, "pc", "elf")
	root := filepath.Join(t.TempDir(), "rootfs.img")
	copySparse(t, img, root)
	rootNBD := serveNBD(t, root, "r")
	data := startNBD(t, 16<<20)
	var served atomic.Int32
	httpPort := serveDir(t, files, &served)
	sshPort, iperfPort, iperf1Port := freePort(t), freePort(t), freePort(t)

	// Two cores a node: the device node's vCPU then leaves a core to its
	// network, disks and transport (with one, node 2 once waited 5 s for
	// node 1's acknowledgements).
	c := launch.Cluster{Nodes: 2, Segment: 48000 + os.Getpid()%1000*2, CPUs: 2, MemMiB: 1024}
	elf := filepath.Join(dir, "bigiron.elf")
	args := c.QEMU(1, elf, launch.Accel(false))
	for i, a := range args {
		if a == c.CommandLine(1) {
			args[i] = strings.Replace(a, "bigiron.ip="+launch.IP(1)+"/24", "bigiron.ip=dhcp bigiron.uplink=1", 1)
		}
	}
	args = append(args, "-netdev", fmt.Sprintf("user,id=n1,hostfwd=tcp:127.0.0.1:%d-%s:22,hostfwd=tcp:127.0.0.1:%d-%s:5201,hostfwd=tcp:127.0.0.1:%d-%s:5202",
		sshPort, guestAddr, iperfPort, guestAddr, iperf1Port, guestAddr), "-device", "e1000,netdev=n1")
	nodes := []*node{nil, bootQEMU(t, args...), bootQEMU(t, c.QEMU(2, elf, launch.Accel(false))...)}
	a, b := nodes[1], nodes[2]
	t.Cleanup(func() {
		if t.Failed() {
			a.con.Write([]byte{0x1D}) // off the guest's console, if on it
			for i := 1; i <= 2; i++ {
				t.Logf("node %d says:\n%s", i, diagnose(nodes[i], "nodes", "disks", "dvm stat", "trace kind=fault last=10"))
			}
		}
		for i := 1; i <= 2; i++ {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("cluster-rootfs-node%d.log", i)), []byte(nodes[i].con.Output()), 0o644)
		}
	})
	start := time.Now()
	// The guest's housekeeping stays on vCPU 0 (node 1); its clock is
	// dilated as in the demo (launch.LinuxStartLine).
	line := fmt.Sprintf("dvm start guest=linux vcpus=2 mem=256M place=node0 dilate=10 disk=nbd://10.0.2.2:%d/r,nbd://10.0.2.2:%d/d net=on root=vda kernel=http://10.0.2.2:%d/vmlinuz initrd=http://10.0.2.2:%d/initramfs.cpio.gz",
		rootNBD.port, data.port, httpPort, httpPort)
	steps := []launch.Step{
		{Node: 1, Want: prompt, Timeout: 10 * time.Minute},
		{Node: 2, Want: prompt, Timeout: 10 * time.Minute},
		{Node: 1, Line: "nodes", Want: "members [1 2]: quorum", Retry: true, Timeout: 5 * time.Minute},
	}
	var log strings.Builder
	if err := launch.Play(steps, []*serial.Console{nil, a.con, b.con}, &log); err != nil {
		t.Fatalf("the cluster: %v\n%s", err, log.String())
	}
	for _, n := range []*node{a, b} {
		run(t, n, "trace on", time.Minute)
	}
	g := bootDistRootFS(t, a, b, line, sshPort, signer)
	t.Logf("dvm start to root's ssh login with vCPU 1 on node 2: %v", time.Since(start).Round(time.Second))
	// nproc --all: isolcpus keeps the login's tasks off vCPU 1, so
	// plain nproc counts one.
	if got := g.run("nproc --all; grep ' / ' /proc/mounts; ip -4 -o addr show scope global"); !strings.HasPrefix(got, "2\n") ||
		!strings.Contains(got, "/dev/vda / ext4 rw") || !strings.Contains(got, " "+guestAddr+"/24 ") {
		t.Errorf("the guest's CPUs, root and address: %q, want 2, /dev/vda and %s", got, guestAddr)
	}
	checkWriteLoop(t, g, data, "taskset -c 1 ")
	g.try("taskset -c 1 iperf3 -s -D -p 5202")
	if !measureGuest(t, g, measurement{iperfPort: iperf1Port, where: "vCPU 1 on node 2, devices on node 1", pin: "taskset -c 1 ", hostClock: true}) {
		logHyperkernel(t, a, "disks", "dvm stat")
	}
	token := make([]byte, 8)
	rand.Read(token)
	mark := fmt.Sprintf("big-iron %x", token)
	g.run(fmt.Sprintf("taskset -c 1 sh -c \"echo '%s' > /root/persist && sync\"", mark))
	g.close()
	detach(t, a)
	t.Logf("disks:\n%s", run(t, a, "disks", time.Minute))
	for i, n := range []*node{a, b} {
		t.Logf("node %d: dvm stat:\n%s", i+1, run(t, n, "dvm stat", time.Minute))
	}
	run(t, a, "dvm stop", 2*time.Minute)
	checkImageFile(t, root, "/root/persist", mark)

	// A new VM from the same disks: the file is there.
	g = bootDistRootFS(t, a, nil, line, sshPort, signer)
	if got := g.run("cat /root/persist"); strings.TrimSpace(got) != mark {
		t.Errorf("after dvm stop and a new dvm start, /root/persist holds %q, want %q", got, mark)
	}
	g.close()
	if got := served.Load(); got != 4 {
		t.Errorf("the host's HTTP server served %d files, want the kernel and the initramfs for each of two starts", got)
	}
	t.Logf("whole test on QEMU TCG: %v", time.Since(start).Round(time.Second))
	out := a.con.Output()
	if bad := badBootLines.FindAllString(out, -1); len(bad) > 0 {
		t.Errorf("the guest's log:\n%s", strings.Join(bad, "\n"))
	}
	if hung := hungTasks.FindAllString(out, -1); len(hung) > 0 {
		t.Errorf("tasks hung in the guest:\n%s", strings.Join(hung, "\n"))
	}
}

// diagnose types commands at n's shell and returns what they printed,
// or why not, without failing: for a test that has failed already.
func diagnose(n *node, commands ...string) string {
	var b strings.Builder
	for _, c := range commands {
		if err := n.con.Send(c); err != nil {
			return b.String() + err.Error()
		}
		out, err := n.con.Expect(prompt, 30*time.Second)
		fmt.Fprintf(&b, "%s:\n%s\n", c, out)
		if err != nil {
			return b.String() + err.Error()
		}
	}
	return b.String()
}

// bootDistRootFS starts the distributed VM with line on node a, waits
// for Debian's systemd on its console, moves vCPU 1 to node b (unless b
// is nil) and logs in over ssh.
func bootDistRootFS(t *testing.T, a, b *node, line string, sshPort int, signer ssh.Signer) *sshGuest {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(5 * time.Second) {
		out := run(t, a, line, 5*time.Minute)
		if strings.Contains(out, "started") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s:\n%s", line, out)
		}
		t.Logf("dvm start refused, tried again (the last VM may still be ending):\n%s", out)
	}
	if err := a.con.Send("console"); err != nil {
		t.Fatal(err)
	}
	which, _, err := a.con.ExpectAny([]string{"running in system mode", "the initramfs shell instead", "Kernel panic"}, 30*time.Minute)
	if err != nil || which != 0 {
		t.Fatalf("the guest did not start Debian's systemd from its disk: %v\n%s", err, lastLines(a.con.Output(), 60))
	}
	if b != nil {
		if out := run(t, b, "migrate 1 2", 5*time.Minute); !strings.Contains(out, "moving to node 2") {
			t.Fatalf("migrate 1 2:\n%s", out)
		}
		there := regexp.MustCompile(`(?m)^1\s+2\s`)
		for deadline := time.Now().Add(5 * time.Minute); !there.MatchString(run(t, b, "vcpus dvm", time.Minute)); time.Sleep(2 * time.Second) {
			if time.Now().After(deadline) {
				t.Fatal("vCPU 1 did not move to node 2")
			}
		}
	}
	g := dialGuest(t, a, sshPort, signer, 30*time.Minute)
	g.limit = 15 * time.Minute
	return g
}

// writeBlocks is how many 64 KiB blocks checkWriteLoop writes.
const writeBlocks = 48

// checkWriteLoop has the guest write random 64 KiB blocks to its second
// disk one at a time (direct I/O, each flushed), logging each block's
// MD5 once its write returned, with pin before dd (taskset -c N). Once
// some are written the disk's NBD server is killed, and restarted 5 s
// later: the loop must resume and finish, and every block it logged
// must read back as logged, in the guest and in the server's file.
func checkWriteLoop(t *testing.T, g *sshGuest, srv *nbdServer, pin string) {
	t.Helper()
	loop := fmt.Sprintf(`rm -f /root/written; for i in $(seq 0 %d); do head -c 65536 /dev/urandom > /tmp/blk && %sdd if=/tmp/blk of=/dev/vdb bs=64K seek=$i oflag=direct conv=fsync status=none && echo "$i $(md5sum < /tmp/blk | cut -c1-32)" >> /root/written || echo "failed $i"; done; echo loopdone`,
		writeBlocks-1, pin)
	done := make(chan string, 1)
	go func() {
		out, err := g.exec(loop, 20*time.Minute)
		if err != nil {
			out += err.Error()
		}
		done <- out
	}()
	written := func() int {
		n, _ := strconv.Atoi(strings.TrimSpace(g.try("wc -l < /root/written 2>/dev/null || echo 0")))
		return n
	}
	for deadline := time.Now().Add(10 * time.Minute); written() < 8; time.Sleep(2 * time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("the guest's write loop wrote fewer than 8 blocks in 10 minutes")
		}
	}
	srv.Kill()
	before := written()
	time.Sleep(5 * time.Second)
	during := written()
	srv.Start()
	srv.Ready()
	t.Logf("write loop: %d blocks written when the server was killed, %d after 5 s without it", before, during)
	var out string
	select {
	case out = <-done:
	case <-time.After(20 * time.Minute):
		t.Fatal("the write loop did not finish in 20 minutes after the server came back")
	}
	if !strings.Contains(out, "loopdone") || strings.Contains(out, "failed") {
		t.Fatalf("the write loop across the server's restart: %q", out)
	}
	log := g.run("cat /root/written")
	sums := map[int]string{}
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var i int
		var sum string
		if _, err := fmt.Sscanf(sc.Text(), "%d %s", &i, &sum); err == nil {
			sums[i] = sum
		}
	}
	if len(sums) != writeBlocks {
		t.Fatalf("the guest logged %d blocks written, want %d:\n%s", len(sums), writeBlocks, log)
	}
	if bad := g.run(`while read i s; do t=$(dd if=/dev/vdb bs=64K skip=$i count=1 iflag=direct status=none | md5sum | cut -c1-32); [ "$s" = "$t" ] || echo "bad $i"; done < /root/written; echo checked`); strings.TrimSpace(bad) != "checked" {
		t.Errorf("blocks read back in the guest differ from what it wrote: %q", bad)
	}
	file, err := os.ReadFile(srv.file)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range sums {
		if got := fmt.Sprintf("%x", md5.Sum(file[i*65536:(i+1)*65536])); got != want {
			t.Errorf("block %d in the server's file: MD5 %s, the guest wrote %s", i, got, want)
		}
	}
}
