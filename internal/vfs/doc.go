// Package vfs is the file-system seam under the journal and the metadata store: every write,
// sync, rename and read of their files goes through FS and File, so tests can run a node on a
// file system that crashes (dropping what was never synced) or that fails (EIO, short writes,
// flipped bits, truncation) and check that nothing acknowledged is lost.
//
// The production implementation is OS. Sync means "data and size are durable" (fdatasync);
// SyncDir makes creations, renames and removals in a directory durable. Code above this package
// must not assume anything is durable that it has not synced through it.
package vfs
