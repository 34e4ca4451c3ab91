// Package raftstore keeps the metadata quorum's raft state on disk through the vfs seam: the
// log (Store, a raft.LogStore and raft.StableStore) and the snapshots (SnapshotStore).
//
// Every byte it writes carries a CRC-32C, and every byte it reads is checked. A record cut
// short at the very end of the newest segment is a write that crashed before it was
// acknowledged and is truncated away; anything else that fails a check is damage, reported as
// an error wrapping ErrDamaged with the file and position. The package never repairs damage
// and never deletes evidence of it: deciding what to do (rebuild from the other voters) is
// the caller's job, because only the caller knows whether other voters exist.
//
// It must never hand raft an entry, a term or a vote it has not verified.
package raftstore
