package webhook

import (
	"syscall"
	"time"
)

// sleepExact blocks the calling goroutine's thread in nanosleep(2) for
// d, to within the kernel's timer slack (50 µs by default). A Go timer is
// not that precise below a millisecond: when no goroutine is runnable, the
// runtime waits for its next timer in epoll_wait, whose timeout is whole
// milliseconds, so a 400 µs wait takes one to two milliseconds. The
// thread blocks in a system call meanwhile; the scheduler lends its P to
// other goroutines when they need it.
func sleepExact(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
