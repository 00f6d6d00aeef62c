//go:build !linux

package tree

import (
	"io/fs"
	"os"
)

// openBeneath is Linux only (openat2); elsewhere os.Root opens every file.
func (r Root) openBeneath(rel string, flags int) (*os.File, bool, error) {
	return nil, false, nil
}

func (r Root) statBeneath(rel string) (fs.FileInfo, bool, error) {
	return nil, false, nil
}

// Dir is Linux only; OpenDir says so (ok false) and callers use Root.Stat.
type Dir struct{}

func (r Root) OpenDir(string) (*Dir, bool, error) { return nil, false, nil }

func (*Dir) Stat(string) (fs.FileInfo, error) { return nil, fs.ErrInvalid }

func (*Dir) Close() error { return nil }
