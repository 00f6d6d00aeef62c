package appconfig

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/ssid/ssid-anchor/anchor/tree"
)

// MaxSize bounds a config file (the appliance config, the telemetry
// config). A config is a few KB; without a bound, a wrong or runaway file
// named as one (a log, an image) was read whole into memory at every
// SIGHUP, console view and telemetry check: 7.3 GB for a 1 GB file.
const MaxSize = 1 << 20

// ErrTooLarge marks a config file over MaxSize: a config error.
var ErrTooLarge = errors.New("too large for a config file")

// ReadFile reads the config file at path: a regular file (a FIFO is
// refused at once, not waited on) of at most MaxSize bytes.
func ReadFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBounded(f)
}

// ReadTreeFile is ReadFile for a config in the governance tree, read
// through the confined root.
func ReadTreeFile(root tree.Root, rel string) ([]byte, error) {
	f, err := root.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBounded(f)
}

func readBounded(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: it is a %v, not a regular file", tree.ErrNotRegular, st.Mode().Type())
	}
	if st.Size() > MaxSize {
		return nil, fmt.Errorf("%w: it is %d bytes, the limit is %d (a config is a few KB; is it the right file?)", ErrTooLarge, st.Size(), MaxSize)
	}
	// The file may grow after the stat: read one byte past the limit to
	// know.
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: it grew past the limit of %d bytes while it was read", ErrTooLarge, MaxSize)
	}
	return b, nil
}
