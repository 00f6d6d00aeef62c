package statcache

import (
	"io/fs"
	"syscall"
)

// Of is the metadata of a file as the anchoring run stat'ed it; ok is
// false when the platform gives none (the cache is then not used).
func Of(fi fs.FileInfo) (st Stat, ok bool) {
	s, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Stat{}, false
	}
	return Stat{
		Size:    s.Size,
		MtimeNS: s.Mtim.Nano(),
		CtimeNS: s.Ctim.Nano(),
		Ino:     s.Ino,
		Dev:     uint64(s.Dev),
	}, true
}
