//go:build linux

// Command wirebench measures the cluster's hot path over a real kernel
// link: two network namespaces joined by a veth pair, one side of each
// measurement in each. For MTU 1500 and 9000 it prints, one line per
// figure, the median and 99th-percentile latency, the ratio to the floor
// of the same shape (bare AF_PACKET frames carrying as many bytes each
// way, written and read with plain system calls) and to the polled floor
// (the same frames over the links the figures use, receive rings polled,
// no protocol), the heap allocations per operation in both processes
// (counted in a pass of its own), and the throughput with one operation
// outstanding:
//
//	floor        an AF_PACKET frame echoed by the other side
//	floor-O-B    AF_PACKET frames carrying O payload bytes out, B back
//	pollfloor    floor and floor-O-B over polled receive rings
//	transport    a cluster transport message answered by the other side
//	             (against floor-SIZE-64)
//	write-fault  a remote write fault served by the other node (dvm;
//	             against floor-64-4096: a request out, the page back)
//	read-fault   a remote read fault served by the other node (dvm)
//	migrate      a vCPU's encoded state sent and installed (dvm, migrate;
//	             against floor-SIZE-64), the state of a Linux vCPU
//	             using AVX and protection keys
//
// Usage, as root (it needs ip(8), network namespaces and veth):
//
//	go run ./tools/wirebench [-short] [-idle D] [-hot D]
//
// Both sides take frames in with the image's receive loop (nic.PollLoop,
// nic.DefaultPolling): after a frame it polls again at once for -hot
// (the image's default on hardware), then every 100 µs.
//
// The namespaces are called wirebench-PID-a and wirebench-PID-b; they are
// removed at exit, and those of earlier runs that no longer run are
// removed at start. The measuring side runs in namespace a and the
// serving side in b, each as this program started again there by
// `ip netns exec` with -role.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"

	"github.com/big-iron/big-iron/machine/nic"
)

// options are the command line's settings, which the orchestrating
// process hands on to both sides.
type options struct {
	short   bool
	idle    time.Duration // -idle
	pol     nic.Polling   // the receive loops' pacing; -hot sets Hot
	profile string
}

// sideArgs are the flags that give a side the options it needs.
func (o options) sideArgs() []string {
	args := []string{"-hot=" + o.pol.Hot.String()}
	if o.idle > 0 {
		args = append(args, "-idle="+o.idle.String())
	}
	return args
}

func main() {
	o := options{pol: nic.DefaultPolling()}
	flag.BoolVar(&o.short, "short", false, "time fewer operations (under a minute)")
	flag.DurationVar(&o.idle, "idle", 0, "sleep `D` before each timed operation, floor included, so that both sides fall idle first, as a cluster does between faults")
	flag.DurationVar(&o.pol.Hot, "hot", o.pol.Hot, "the receive loops poll without sleeping for `D` after each frame (0: they sleep 100 µs after an empty poll)")
	role := flag.String("role", "", "internal: client or server, inside a namespace")
	flag.StringVar(&o.profile, "profile", "", "write each side's CPU profile and execution trace to `DIR`/mtuN-{client,server}.{pprof,trace}")
	flag.Parse()
	var err error
	if *role != "" && o.profile != "" {
		stop, perr := startProfile(o.profile, *role)
		if perr != nil {
			fmt.Fprintln(os.Stderr, "wirebench:", perr)
			os.Exit(1)
		}
		defer stop()
	}
	switch *role {
	case "":
		err = orchestrate(o)
	case "client":
		err = runClient(os.Stdout, o)
	case "server":
		err = runServer(os.Stdin, os.Stdout, o.pol)
	default:
		err = fmt.Errorf("unknown role %q", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wirebench:", err)
		os.Exit(1)
	}
}

// orchestrate makes the namespaces and runs both sides in them once per
// MTU, removing the namespaces at the end or on SIGINT or SIGTERM.
func orchestrate(o options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces and a veth pair")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("needs ip(8) (iproute2): %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("own executable: %w", err)
	}
	pid := os.Getpid()
	old, err := removeStale(pid)
	if err != nil {
		return fmt.Errorf("removing leftovers: %w", err)
	}
	if len(old) > 0 {
		fmt.Fprintf(os.Stderr, "wirebench: removed leftover namespaces %v\n", old)
	}
	tb, err := newTestbed(pid)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = runAll(ctx, tb, self, o)
	return errors.Join(err, tb.remove())
}

// runAll measures at MTU 1500 and 9000.
func runAll(ctx context.Context, tb *testbed, self string, o options) error {
	for _, mtu := range []int{1500, 9000} {
		if err := tb.setMTU(mtu); err != nil {
			return err
		}
		extra := o.sideArgs()
		if o.profile != "" {
			extra = append(extra, "-profile="+filepath.Join(o.profile, fmt.Sprintf("mtu%d", mtu)))
		}
		if err := runPair(ctx, tb, self, o.short, extra); err != nil {
			return fmt.Errorf("mtu %d: %w", mtu, err)
		}
	}
	return nil
}

// runPair starts the serving side in namespace b, waits until it is
// ready, and runs the measuring side in namespace a, its report going to
// standard output. Closing the server's standard input stops it.
func runPair(ctx context.Context, tb *testbed, self string, short bool, extra []string) error {
	srv := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", tb.nsB, self, "-role=server"}, extra...)...)
	srv.Stderr = os.Stderr
	in, err := srv.StdinPipe()
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	out, err := srv.StdoutPipe()
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	defer srv.Wait()
	defer in.Close()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "ready" {
		return fmt.Errorf("server did not start: %q %v", lines.Text(), lines.Err())
	}
	go io.Copy(os.Stderr, out) // whatever it reports later
	args := append([]string{"netns", "exec", tb.nsA, self, "-role=client"}, extra...)
	if short {
		args = append(args, "-short")
	}
	cl := exec.CommandContext(ctx, "ip", args...)
	cl.Stdout, cl.Stderr = os.Stdout, os.Stderr
	cl.WaitDelay = time.Second
	if err := cl.Run(); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

// startProfile writes the CPU profile and the execution trace of this
// side to prefix-role.pprof and prefix-role.trace until the returned
// function is called. The trace shows what the CPU profile cannot: the
// time a goroutine that was woken waits to run (go tool trace
// -pprof=sched).
func startProfile(prefix, role string) (func(), error) {
	pf, err := os.Create(prefix + "-" + role + ".pprof")
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	tf, err := os.Create(prefix + "-" + role + ".trace")
	if err != nil {
		pf.Close()
		return nil, fmt.Errorf("trace: %w", err)
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		pf.Close()
		tf.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := trace.Start(tf); err != nil {
		pprof.StopCPUProfile()
		pf.Close()
		tf.Close()
		return nil, fmt.Errorf("trace: %w", err)
	}
	return func() {
		trace.Stop()
		pprof.StopCPUProfile()
		tf.Close()
		pf.Close()
	}, nil
}
