package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/big-iron/big-iron/tools/cluster/launch"
	"github.com/big-iron/big-iron/tools/cluster/serial"
)

func TestZZIODiag(t *testing.T) {
	requireE2E(t, "qemu-system-x86_64", "make")
	nbd := startNBD(t, 64<<20)
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
	steps := c.LinuxDemo("qemu", fmt.Sprintf("disk=nbd://10.0.2.2:%d/d net=on", nbd.port))
	var log strings.Builder
	if err := launch.Play(steps, []*serial.Console{nil, nodes[1].con, nodes[2].con}, &log); err != nil {
		t.Fatalf("demo: %v\n%s", err, log.String())
	}
	waitVCPU1(t, nodes[2], 2)
	shellPrompt, guest := guestShell(t, nodes[1], 15*time.Minute)
	shellPrompt()
	timed := func(line, want string) time.Duration {
		s := time.Now()
		guest(line, want)
		d := time.Since(s)
		t.Logf("%-70s %v", line, d.Round(time.Millisecond))
		return d
	}
	faults := regexp.MustCompile(`faults: (\d+) \((\d+) remote`)
	remote := func(i int) int {
		m := faults.FindStringSubmatch(run(t, nodes[i], "dvm stat", time.Minute))
		if m == nil {
			return -1
		}
		return atoi(m[2])
	}
	for i := 0; i < 10; i++ {
		b1 := remote(2)
		d := timed("oncpu 1 echo z", "\nz")
		b2 := remote(2)
		d0 := timed("oncpu 0 echo y", "\ny")
		b3 := remote(2)
		t.Logf("round %d: cpu1 %v (%d remote faults on node 2), cpu0 %v (%d on node 2)", i, d.Round(time.Millisecond), b2-b1, d0.Round(time.Millisecond), b3-b2)
		if i == 4 {
			guest("sleep 3", "$ ")
		}
	}
	for i := 1; i <= 2; i++ {
		t.Logf("node %d: dvm stat:\n%s", i, run(t, nodes[i], "dvm stat", time.Minute))
	}
}
