package journal

import (
	"strings"
	"sync/atomic"
)

// Fault injection for the layers above (the broker's tests of disk errors): writes or
// fsyncs of segments under a directory fail with a given error. The journal's own tests
// replace writeAt and syncFile directly; this is the race-free way for tests in other
// packages, whose logs keep running while the fault is set.

type faultRule struct {
	dir string
	err error
}

var writeFault, syncFault atomic.Pointer[faultRule]

// InjectWriteError makes every segment write of logs under dir fail with err until the
// returned function is called. Only for tests.
func InjectWriteError(dir string, err error) (restore func()) {
	return inject(&writeFault, dir, err)
}

// InjectSyncError makes every segment fsync of logs under dir fail with err until the
// returned function is called. Only for tests.
func InjectSyncError(dir string, err error) (restore func()) {
	return inject(&syncFault, dir, err)
}

func inject(p *atomic.Pointer[faultRule], dir string, err error) func() {
	r := &faultRule{dir: dir, err: err}
	p.Store(r)
	return func() { p.CompareAndSwap(r, nil) }
}

// injected is the error a fault rule sets for a segment file at path, nil almost always.
func injected(p *atomic.Pointer[faultRule], path string) error {
	r := p.Load()
	if r == nil || !strings.HasPrefix(path, r.dir) {
		return nil
	}
	return r.err
}
