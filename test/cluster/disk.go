package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TmpfsSupport says why a tmpfs cannot be mounted here, or nil if it can.
func TmpfsSupport(t testing.TB) error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	dir := t.TempDir()
	if err := run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir); err != nil {
		return err
	}
	return run("umount", dir)
}

// MountTmpfs mounts a tmpfs of size (e.g. "64m") on a fresh directory and unmounts it when
// the test ends. Start the cluster after this, so its processes are gone before the
// unmount.
func MountTmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := run("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := run("umount", dir); err != nil {
			run("umount", "-l", dir)
		}
	})
	return dir
}

// FillDisk writes a file into dir until the file system is full and returns the file's
// path; remove it to free the space.
func FillDisk(dir string) (string, error) {
	path := filepath.Join(dir, "harness-filler")
	f, err := os.Create(path)
	if err != nil {
		return path, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := 0; i < 1<<14; i++ {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				// Take the last few kilobytes too.
				small := buf[:512]
				for j := 0; j < 1<<12; j++ {
					if _, err := f.Write(small); err != nil {
						break
					}
				}
				return path, nil
			}
			return path, err
		}
	}
	return path, fmt.Errorf("%s never filled up", dir)
}

// FreeBytes is how much space the file system holding dir has left.
func FreeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
