package lab

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Listen opens a TCP listener on 127.0.0.1 inside a lab host's network
// namespace and returns it to the test process. A socket belongs to the
// namespace it was made in for good, so a server in the test (the fake
// Telegram, say) can serve programs running in the lab on their own
// loopback, and nothing is exposed outside the lab.
func (l *Lab) Listen(t testing.TB, host string) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is never unlocked: if switching back failed, it
		// would stay in the lab's namespace, so it must die with the
		// goroutine rather than return to the pool.
		runtime.LockOSThread()
		ln, err := listenIn("/run/netns/" + l.hostNS(host))
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listening in the lab's %s namespace: %v", host, r.err)
	}
	t.Cleanup(func() { r.ln.Close() })
	return r.ln
}

func listenIn(nsPath string) (net.Listener, error) {
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return nil, err
	}
	defer self.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("setns %s: %w", nsPath, err)
	}
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, fmt.Errorf("returning from %s: %w", nsPath, err)
	}
	return ln, lerr
}

// hostNS names the namespace of a lab host, as lab.sh does.
func (l *Lab) hostNS(host string) string {
	switch host {
	case "router":
		return "dl-" + l.Tag + "-r"
	case "wan":
		return "dl-" + l.Tag + "-w"
	case "doorman":
		return "dl-" + l.Tag + "-h"
	}
	if n, ok := strings.CutPrefix(host, "dev"); ok {
		return "dl-" + l.Tag + "-d" + n
	}
	return "dl-" + l.Tag + "-" + host
}
