package statcache

import (
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// Of is the metadata of a file as the anchoring run stat'ed it; ok is
// false when the platform gives none (the cache is then not used).
func Of(fi fs.FileInfo) (st Stat, ok bool) {
	switch s := fi.Sys().(type) {
	case *syscall.Stat_t:
		return Stat{Size: s.Size, MtimeNS: s.Mtim.Nano(), CtimeNS: s.Ctim.Nano(), Ino: uint64(s.Ino), Dev: uint64(s.Dev)}, true
	case *unix.Stat_t: // tree.Dir's
		return Stat{Size: s.Size, MtimeNS: s.Mtim.Nano(), CtimeNS: s.Ctim.Nano(), Ino: uint64(s.Ino), Dev: uint64(s.Dev)}, true
	}
	return Stat{}, false
}
