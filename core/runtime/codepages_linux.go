package runtime

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ReleaseStartupCode drops the running binary's code and read-only data
// (the executable's mappings that are neither writable nor shared) from
// the process's resident memory, and returns how many bytes of file pages
// that took out of its RSS.
//
// Start-up runs the initialisation of every package linked in, and the
// kernel maps each page-cache folio a fault touches whole (and the folios
// of a binary the linker just wrote, or read ahead, are large): a sidecar
// that starts with every connector linked in has most of its code and
// function tables resident (about 37 MB) though it never runs most of them
// again. madvise(MADV_DONTNEED) unmaps those pages from the process; the
// page cache keeps them, so what the sidecar still runs faults back in at
// the cost of a minor fault, not a read from disk (MADV_PAGEOUT, which
// evicts them, made the first requests after it wait on the disk). Pages
// of a private mapping that were never written are the file's, so
// dropping them loses nothing. The writable mappings (the binary's
// initialised data, which the program has written to) are left alone.
//
// A process that a debugger traces is left alone too: a breakpoint is a
// private copy of a code page, and dropping it would remove the
// breakpoint.
func ReleaseStartupCode() (int64, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	if v, ok := statusField(status, "TracerPid:"); ok && v != 0 {
		return 0, nil
	}
	before, _ := statusField(status, "RssFile:")
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("the running binary: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	exe := exeFile{
		dev: fmt.Sprintf("%02x:%02x", devMajor(st.Dev), devMinor(st.Dev)),
		ino: strconv.FormatUint(st.Ino, 10),
	}
	exe.path, _ = os.Readlink("/proc/self/exe")
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if !exe.readOnlyMapping(fl) {
			continue
		}
		lo, hi, ok := strings.Cut(fl[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED); errno != 0 {
			return 0, fmt.Errorf("madvise %s of %s: %w", fl[0], fl[5], errno)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	status, err = os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	after, _ := statusField(status, "RssFile:")
	return max(0, before-after) << 10, nil
}

// exeFile names the running binary as /proc/self/maps does: by device
// and inode, and by path.
type exeFile struct {
	dev, ino, path string
}

// readOnlyMapping reports whether the fields of a /proc/self/maps line
// (address, perms, offset, device, inode, path) are a private mapping of
// the binary that is not writable. The path is the fallback: on overlay
// filesystems (container images) the mapping shows the underlying file's
// device and inode, while stat of /proc/self/exe shows the overlay's.
func (e exeFile) readOnlyMapping(fl []string) bool {
	if len(fl) < 6 {
		return false
	}
	if perms := fl[1]; len(perms) != 4 || perms[1] == 'w' || perms[3] != 'p' {
		return false
	}
	return fl[3] == e.dev && fl[4] == e.ino || e.path != "" && strings.Join(fl[5:], " ") == e.path
}

// statusField reads a number from /proc/self/status: a count, or kB for
// the sizes.
func statusField(status []byte, name string) (int64, bool) {
	i := bytes.Index(status, []byte("\n"+name))
	if i < 0 {
		return 0, false
	}
	line := status[i+1+len(name):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	fields := strings.Fields(string(line))
	if len(fields) == 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(fields[0], 10, 64)
	return v, err == nil
}

// devMajor and devMinor split a device number as the kernel encodes it
// (glibc's gnu_dev_major and gnu_dev_minor).
func devMajor(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^uint64(0xfff) }
func devMinor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^uint64(0xff) }
