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
	var ln net.Listener
	l.InNamespace(t, host, func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	t.Cleanup(func() { ln.Close() })
	return ln
}

// InNamespace runs fn on a thread inside a lab host's network namespace:
// sockets fn opens belong to the lab (a fake device's SSDP responder, say)
// while the test serves them. fn must not start goroutines that open
// sockets: those would run in the test's own namespace.
func (l *Lab) InNamespace(t testing.TB, host string, fn func() error) {
	t.Helper()
	ch := make(chan error, 1)
	go func() {
		// The thread is never unlocked: if switching back failed, it
		// would stay in the lab's namespace, so it must die with the
		// goroutine rather than return to the pool.
		runtime.LockOSThread()
		ch <- runIn("/run/netns/"+l.hostNS(host), fn)
	}()
	if err := <-ch; err != nil {
		t.Fatalf("in the lab's %s namespace: %v", host, err)
	}
}

func runIn(nsPath string, fn func() error) error {
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return err
	}
	defer self.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", nsPath, err)
	}
	ferr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("returning from %s: %w", nsPath, err)
	}
	return ferr
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
