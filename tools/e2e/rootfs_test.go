// Copyright (c) 2026 The big-iron Authors. All rights reserved.
// Use of this source code is governed by the BSD-style license in LICENSE.

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// guestAddr is the address QEMU's user network gives the first guest
// card by DHCP (the node itself has 10.0.2.15).
const guestAddr = "10.0.2.16"

// TestQEMULinuxRootFS boots the operator's own OS as a guest: Debian
// (make rootfs: systemd, sshd, iperf3, fio) on an NBD export of the
// host's, on one AMD-V node (QEMU TCG) whose image carries no guest: its
// kernel and initramfs come from the host's HTTP server (vm boot linux
// kernel=URL initrd=URL), after a missing file and a server that is not
// there were refused. The initramfs switches to the
// disk (vm boot linux ... root=vda); the host logs in over ssh through a
// port QEMU forwards to the guest's address, checks the guest's kernel,
// root and address, and writes a file. The VM is stopped and booted
// again from the same export, and the file must still be there. It
// also measures the guest's network (iperf3 from the host) and disk
// (fio in the guest), on the emulator's wall clock.
func TestQEMULinuxRootFS(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	img, key := buildRootFS(t)
	signer := sshSigner(t, key)
	files := buildGuestFiles(t)
	dir := buildImage(t, "pc", "elf")
	kernel := guestKernelVersion(t)
	var served atomic.Int32
	httpPort := serveDir(t, files, &served)
	disk := filepath.Join(t.TempDir(), "rootfs.img")
	copySparse(t, img, disk)
	nbd := serveNBD(t, disk, "r")
	sshPort, iperfPort := freePort(t), freePort(t)
	start := time.Now()
	n := bootQEMU(t, "-machine", "q35", "-cpu", "max", "-smp", "2", "-m", "2G",
		"-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-%s:22,hostfwd=tcp:127.0.0.1:%d-%s:5201",
			sshPort, guestAddr, iperfPort, guestAddr),
		"-device", "e1000,netdev=n0",
		"-kernel", filepath.Join(dir, "bigiron.elf"), "-append", "bigiron.ip=dhcp")
	t.Cleanup(func() { os.WriteFile(filepath.Join(dir, "rootfs-console.log"), []byte(n.con.Output()), 0o644) })
	if _, err := n.con.Expect(prompt, 2*time.Minute); err != nil {
		t.Fatalf("no prompt: %v\n%s", err, n.con.Output())
	}
	checkBootFilesRefused(t, n, httpPort)
	boot := fmt.Sprintf("vm boot linux mem=512M disk=nbd://10.0.2.2:%d/r net=on root=vda kernel=http://10.0.2.2:%d/vmlinuz initrd=http://10.0.2.2:%d/initramfs.cpio.gz",
		nbd.port, httpPort, httpPort)

	// First boot: log in, look around, leave a file.
	g := bootRootFS(t, n, boot, sshPort, signer)
	if got := g.run("uname -r"); strings.TrimSpace(got) != kernel {
		t.Errorf("uname -r: %q, want the image's kernel %s", got, kernel)
	}
	if got := g.run("cat /proc/1/comm; grep ' / ' /proc/mounts"); !strings.HasPrefix(got, "systemd\n") || !strings.Contains(got, "/dev/vda / ext4 rw") {
		t.Errorf("process 1 and the root file system: %q, want systemd and /dev/vda as ext4, read-write", got)
	}
	if got := g.run("ip -4 -o addr show scope global"); !strings.Contains(got, " "+guestAddr+"/24 ") {
		t.Errorf("the guest's address: %q, want %s from QEMU's DHCP server", got, guestAddr)
	}
	t.Logf("systemctl is-system-running: %s", strings.TrimSpace(g.try("systemctl is-system-running")))
	// The card's negotiated features, bit 0 first: CSUM (0), HOST_TSO4
	// (11) and HOST_TSO6 (12), so that Linux hands over whole TCP packets.
	if f := strings.TrimSpace(g.run("cat /sys/class/net/eth0/device/features")); len(f) < 13 || f[0] != '1' || f[11] != '1' || f[12] != '1' {
		t.Errorf("the guest's card negotiated %q: want checksum and TCP segmentation offloads", f)
	}
	token := make([]byte, 8)
	rand.Read(token)
	mark := fmt.Sprintf("big-iron %x", token)
	g.run(fmt.Sprintf("echo '%s' > /root/persist && sync", mark))
	if got := g.run("cat /root/persist"); strings.TrimSpace(got) != mark {
		t.Fatalf("the file just written: %q, want %q", got, mark)
	}
	if !measureGuest(t, g, measurement{iperfPort: iperfPort, where: "one node"}) {
		logHyperkernel(t, n, "disks", "vcpus")
	}
	g.close()
	stopGuest(t, n)
	checkImageFile(t, disk, "/root/persist", mark)

	// Second boot from the same export: the file is there.
	g = bootRootFS(t, n, boot, sshPort, signer)
	if got := g.run("cat /root/persist"); strings.TrimSpace(got) != mark {
		t.Errorf("after the VM was stopped and booted again, /root/persist holds %q, want %q", got, mark)
	}
	g.close()
	detach(t, n)
	if got := served.Load(); got != 4 {
		t.Errorf("the host's HTTP server served %d files, want the kernel and the initramfs for each of two boots", got)
	}
	t.Logf("disks:\n%s", run(t, n, "disks", time.Minute))
	t.Logf("whole test on QEMU TCG: %v", time.Since(start).Round(time.Second))
	if bad := badBootLines.FindAllString(n.con.Output(), -1); len(bad) > 0 {
		t.Errorf("the guest's log:\n%s", strings.Join(bad, "\n"))
	}
	if hung := hungTasks.FindAllString(n.con.Output(), -1); len(hung) > 0 {
		t.Errorf("tasks hung in the guest (its disk stopped answering?):\n%s", strings.Join(hung, "\n"))
	}
}

// checkBootFilesRefused asks the node, whose image carries no guest, to
// boot Linux from the image, from a file its HTTP server lacks and from
// a server that is not there: each is refused with the reason, and
// nothing starts.
func checkBootFilesRefused(t *testing.T, n *node, httpPort int) {
	t.Helper()
	for _, c := range []struct{ line, want string }{
		{"vm boot linux", "this image carries no guest kernel"},
		{fmt.Sprintf("vm boot linux kernel=http://10.0.2.2:%d/nothing", httpPort), "404 Not Found"},
		{fmt.Sprintf("vm boot linux kernel=http://10.0.2.2:%d/vmlinuz", freePort(t)), "refused"},
	} {
		if out := run(t, n, c.line, 2*time.Minute); !strings.Contains(out, c.want) {
			t.Errorf("%s:\n%s\nwant an error saying %q", c.line, out, c.want)
		}
	}
	if out := run(t, n, "vm list", time.Minute); strings.Contains(out, "linux") {
		t.Errorf("a refused vm boot left a VM:\n%s", out)
	}
}

// hungTasks are the kernel's reports of tasks blocked for minutes.
var hungTasks = regexp.MustCompile(`(?m)^.*INFO: task .* blocked for more than .*$`)

// logHyperkernel detaches from the guest's console, logs what the
// hyperkernel's commands say, and attaches again.
func logHyperkernel(t *testing.T, n *node, commands ...string) {
	t.Helper()
	detach(t, n)
	for _, c := range commands {
		t.Logf("%s:\n%s", c, run(t, n, c, time.Minute))
	}
	if err := n.con.Send("console"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.con.Expect("[vm ", time.Minute); err != nil {
		t.Fatalf("console: %v", err)
	}
}

// checkImageFile looks for a file in an ext4 image from the host, as the
// guest left it (not unmounted: its last writes may be in the journal
// only): in a copy whose journal e2fsck replays, read with debugfs.
func checkImageFile(t *testing.T, img, path, want string) {
	t.Helper()
	for _, tool := range []string{"e2fsck", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("%s not looked for in the server's image from the host: missing %s (e2fsprogs)", path, tool)
			return
		}
	}
	cp := filepath.Join(t.TempDir(), "check.img")
	copySparse(t, img, cp)
	if out, err := exec.Command("e2fsck", "-y", "-E", "journal_only", cp).CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 { // 1: errors corrected
			t.Errorf("e2fsck -E journal_only on the server's image: %v\n%s", err, out)
			return
		}
	}
	out, err := exec.Command("debugfs", "-R", "cat "+path, cp).Output()
	if err != nil || strings.TrimSpace(string(out)) != want {
		t.Errorf("the server's image holds %q in %s (%v), want %q", out, path, err, want)
	}
}

// buildRootFS runs make rootfs and returns the image and root's ssh key.
// It skips, naming what is missing, where the image cannot be built.
func buildRootFS(t *testing.T) (img, key string) {
	t.Helper()
	root := repoRoot(t)
	img, key = filepath.Join(root, "build/guest/rootfs.img"), filepath.Join(root, "build/guest/rootfs_key")
	if os.Geteuid() != 0 {
		t.Skip("missing: root (make rootfs installs Debian's packages into a tree as root)")
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		if _, err := exec.LookPath("debootstrap"); err != nil {
			t.Skip("missing: mmdebstrap or debootstrap (apt-get install mmdebstrap), for make rootfs")
		}
	}
	start := time.Now()
	out, err := exec.Command("make", "-C", root, "rootfs").CombinedOutput()
	if err != nil {
		if _, serr := os.Stat(img); serr != nil {
			t.Skipf("missing: build/guest/rootfs.img (make rootfs: %v)\n%s", err, out)
		}
		t.Fatalf("make rootfs: %v\n%s", err, out)
	}
	t.Logf("make rootfs: %v", time.Since(start).Round(time.Second))
	return img, key
}

// guestKernelVersion is the version of the image's Debian kernel, the
// name of its module directory.
func guestKernelVersion(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(repoRoot(t), "build/guest/root/lib/modules/*"))
	if len(dirs) == 0 {
		t.Fatal("no build/guest/root/lib/modules/VERSION after make guest")
	}
	return filepath.Base(dirs[0])
}

// copySparse copies a sparse image, leaving its holes holes.
func copySparse(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	buf, zero := make([]byte, 1<<20), make([]byte, 1<<20)
	var size int64
	for {
		n, err := io.ReadFull(in, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := out.WriteAt(buf[:n], size); werr != nil {
				t.Fatal(werr)
			}
		}
		size += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// sshSigner reads root's private key.
func sshSigner(t *testing.T, path string) ssh.Signer {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("root's ssh key: %v", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatalf("root's ssh key %s: %v", path, err)
	}
	return s
}

// bootRootFS types a vm boot line that boots the guest from its own
// root file system, attaches to its console, waits for Debian's systemd
// to start and then for the guest to take root's ssh login through the
// host's port sshPort.
func bootRootFS(t *testing.T, n *node, line string, sshPort int, signer ssh.Signer) *sshGuest {
	t.Helper()
	if out := run(t, n, line, 2*time.Minute); !strings.Contains(out, "started") {
		t.Fatalf("%s:\n%s", line, out)
	}
	start := time.Now()
	if err := n.con.Send("console"); err != nil {
		t.Fatal(err)
	}
	// systemd logs its start on the console (no "quiet" on the guest's
	// command line); the initramfs says when it could not switch.
	which, _, err := n.con.ExpectAny([]string{"running in system mode", "the initramfs shell instead", "Kernel panic"}, 5*time.Minute)
	if err != nil || which != 0 {
		t.Fatalf("the guest did not start Debian's systemd from its disk: %v\n%s", err, lastLines(n.con.Output(), 60))
	}
	t.Logf("vm boot to systemd on the guest's own root: %v", time.Since(start).Round(time.Second))
	g := dialGuest(t, n, sshPort, signer, 5*time.Minute)
	t.Logf("vm boot to root's ssh login: %v", time.Since(start).Round(time.Second))
	return g
}

// sshGuest is an ssh connection to the guest as root.
type sshGuest struct {
	t *testing.T
	c *ssh.Client
	// limit bounds a command (default 2 minutes).
	limit time.Duration
}

// timeout is how long a command may take.
func (g *sshGuest) timeout() time.Duration {
	if g.limit == 0 {
		return 2 * time.Minute
	}
	return g.limit
}

// dialGuest logs in as root through the host's port until it works or
// timeout passes (QEMU takes the connection at once and closes it while
// the guest has no sshd or no address yet).
func dialGuest(t *testing.T, n *node, port int, signer ssh.Signer, timeout time.Duration) *sshGuest {
	t.Helper()
	cfg := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second}
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		var c *ssh.Client
		if c, err = ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), cfg); err == nil {
			g := &sshGuest{t: t, c: c}
			if _, err = g.exec("true", time.Minute); err == nil {
				return g
			}
			c.Close()
		}
		time.Sleep(3 * time.Second)
	}
	t.Fatalf("root's ssh login to the guest failed for %v: %v\nthe guest's console:\n%s", timeout, err, lastLines(n.con.Output(), 80))
	return nil
}

// exec runs a command in the guest and returns its standard output; the
// error carries its standard error.
func (g *sshGuest) exec(cmd string, timeout time.Duration) (string, error) {
	s, err := g.c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-time.After(timeout):
		err = fmt.Errorf("no end after %v", timeout)
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%q in the guest: %v: %s", cmd, err, stderr.String())
	}
	return stdout.String(), nil
}

// run is exec that fails the test on an error.
func (g *sshGuest) run(cmd string) string {
	g.t.Helper()
	out, err := g.exec(cmd, g.timeout())
	if err != nil {
		g.t.Fatal(err)
	}
	return out
}

// try is exec that returns the error as the output.
func (g *sshGuest) try(cmd string) string {
	out, err := g.exec(cmd, g.timeout())
	if err != nil {
		return err.Error()
	}
	return out
}

func (g *sshGuest) close() { g.c.Close() }

// detach leaves the guest's console for the hyperkernel's shell.
func detach(t *testing.T, n *node) {
	t.Helper()
	if _, err := n.con.Write([]byte{0x1D}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.con.Expect("[detached from vm ", time.Minute); err != nil {
		t.Fatalf("detach: %v\n%s", err, lastLines(n.con.Output(), 40))
	}
	if _, err := n.con.Expect(prompt, time.Minute); err != nil {
		t.Fatalf("no prompt after detaching: %v", err)
	}
}

// stopGuest detaches from the newest VM's console and stops it, as
// pulling its plug would.
func stopGuest(t *testing.T, n *node) {
	t.Helper()
	detach(t, n)
	if out := run(t, n, "vm stop", 2*time.Minute); !strings.Contains(out, "stopped by the operator") {
		t.Fatalf("vm stop:\n%s", out)
	}
}

// lastLines is the end of a long log.
func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// measurement says how measureGuest runs and labels its figures.
type measurement struct {
	// iperfPort is the host's port forwarded to the guest's iperf3
	// server.
	iperfPort int
	// where labels the figures: where the guest's vCPUs are.
	where string
	// pin prefixes fio's command line (taskset -c 1: run it on vCPU 1).
	pin string
	// hostClock: the guest's clock is dilated, so fio's jobs are of a
	// fixed size and timed on the host's clock, fio start included.
	hostClock bool
}

// measureGuest logs the guest's network throughput (iperf3 from the
// host to the guest's server and back, through QEMU's port forward,
// as the host measures it) and its disk's (fio in the guest:
// sequential MB/s and 4 KiB random IOPS on a file of its root file
// system, direct I/O, so on the NBD disk). A measurement that fails
// fails the test; it reports whether all worked.
func measureGuest(t *testing.T, g *sshGuest, m measurement) bool {
	t.Helper()
	ok := true
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Log("network not measured: missing iperf3 on the host (apt-get install iperf3)")
	} else {
		for _, dir := range []struct{ name, flag string }{{"host to guest", ""}, {"guest to host", "-R"}} {
			bps, err := iperf3(m.iperfPort, dir.flag)
			if err != nil {
				t.Errorf("iperf3 %s: %v", dir.name, err)
				ok = false
				continue
			}
			t.Logf("iperf3 %s (%s): %.1f Mbit/s (QEMU TCG: the node's e1000, QEMU's user net)", dir.name, m.where, bps/1e6)
		}
	}
	size, random := "64M", " --runtime=10 --time_based"
	if m.hostClock {
		// Across nodes every page of a request crosses to the device
		// node: 64 MiB took 5m19s to write, and 8 MiB of random reads
		// more than 11 minutes (2026-12-06). Less, by amount.
		size, random = "16M", " --io_size=1M"
	}
	file := "--filename=/root/fio.dat --size=" + size + " --direct=1 --ioengine=libaio --output-format=json"
	for _, job := range []struct{ name, args string }{
		{"sequential write, 1 MiB blocks, 8 in flight", "--rw=write --bs=1M --iodepth=8"},
		{"sequential read, 1 MiB blocks, 8 in flight", "--rw=read --bs=1M --iodepth=8"},
		{"random read, 4 KiB blocks, 16 in flight", "--rw=randread --bs=4k --iodepth=16" + random},
		{"random write, 4 KiB blocks, 16 in flight", "--rw=randwrite --bs=4k --iodepth=16" + random},
	} {
		start := time.Now()
		out, err := g.exec(m.pin+"fio --name=bigiron "+file+" "+job.args, g.timeout())
		took := time.Since(start)
		if err != nil {
			t.Errorf("fio %s: %v", job.name, err)
			return false // a disk that stopped answering answers no more
		}
		f, err := fioFigures(out)
		if err != nil {
			t.Errorf("fio %s: %v\n%s", job.name, err, out)
			ok = false
			continue
		}
		clock := "fio's clock"
		if m.hostClock {
			f.mbs, f.iops, clock = float64(f.bytes)/took.Seconds()/1e6, float64(f.ios)/took.Seconds(), fmt.Sprintf("host clock, %v with fio's start", took.Round(time.Millisecond))
		}
		t.Logf("fio %s (%s): %.1f MB/s, %.0f IOPS (QEMU TCG: NBD over the node's e1000; %s)", job.name, m.where, f.mbs, f.iops, clock)
	}
	g.try("rm -f /root/fio.dat")
	return ok
}

// iperf3 runs the host's iperf3 client for 8 s against the guest's server
// through port and returns the bits per second the host measured
// sending (or with -R receiving). The server takes one test at a time
// and needs a moment after one: a test it refuses is tried again.
func iperf3(port int, flag string) (bps float64, err error) {
	for try := 0; try < 3; try++ {
		time.Sleep(2 * time.Second)
		if bps, err = iperf3Once(port, flag); err == nil {
			return bps, nil
		}
	}
	return 0, err
}

// iperf3Once is one iperf3 test.
func iperf3Once(port int, flag string) (float64, error) {
	args := []string{"-c", "127.0.0.1", "-p", fmt.Sprint(port), "-t", "8", "-J"}
	if flag != "" {
		args = append(args, flag)
	}
	cmd := exec.Command("iperf3", args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	timer := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	type sum struct {
		BitsPerSecond float64 `json:"bits_per_second"`
	}
	var r struct {
		End struct {
			SumSent     sum `json:"sum_sent"`
			SumReceived sum `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil || r.Error != "" || err != nil {
		return 0, fmt.Errorf("iperf3 %s: exit %v, its report: %v %s", strings.Join(args, " "), err, jerr, r.Error)
	}
	if flag == "-R" {
		return r.End.SumReceived.BitsPerSecond, nil
	}
	return r.End.SumSent.BitsPerSecond, nil
}

// fioResult is one fio job's figures.
type fioResult struct {
	mbs, iops  float64 // on fio's clock
	bytes, ios int64
}

// fioFigures reads fio's JSON report of one job: the figures of the
// direction it did.
func fioFigures(report string) (fioResult, error) {
	type dir struct {
		BWBytes  float64 `json:"bw_bytes"`
		IOPS     float64 `json:"iops"`
		IOBytes  int64   `json:"io_bytes"`
		TotalIOs int64   `json:"total_ios"`
	}
	var r struct {
		Jobs []struct {
			Read  dir `json:"read"`
			Write dir `json:"write"`
		} `json:"jobs"`
	}
	// fio may print notes before its report.
	if i := strings.Index(report, "{"); i > 0 {
		report = report[i:]
	}
	if err := json.Unmarshal([]byte(report), &r); err != nil || len(r.Jobs) == 0 {
		return fioResult{}, fmt.Errorf("no fio report: %v", err)
	}
	j := r.Jobs[0]
	d := j.Read
	if j.Write.IOBytes > d.IOBytes {
		d = j.Write
	}
	return fioResult{mbs: d.BWBytes / 1e6, iops: d.IOPS, bytes: d.IOBytes, ios: d.TotalIOs}, nil
}
