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
