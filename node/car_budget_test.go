package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"
)

// TestCARWalkWithoutFileSize is issue 25.5: for a record without file_size
// (every record of the seed manifest) main bounded the walk by the size
// the bomb's root declares, 256 TB, so verify --car ran for hours. The
// walk is now bounded by the CARs: one walk stops after what they hold
// plus untrustedFloor, and all walks together spend that budget once, so
// pointing many records at the bomb buys nothing. A legitimate file of
// repeated chunks, far larger than its CAR, still reads whole.
func TestCARWalkWithoutFileSize(t *testing.T) {
	dir := t.TempDir()
	car := filepath.Join(dir, "bomb.car")
	root, declared := writeBombCAR(t, car)
	set, err := OpenCARs([]string{car})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	budget := MaxDAGBytes(set.bytes) + untrustedFloor
	var total int64
	for i := range 5 {
		cw := &countWriter{w: io.Discard}
		err := within(t, 60*time.Second, "CARSet.ReadFile without a size", func() error {
			_, err := set.ReadFile(context.Background(), root, 0, cw)
			return err
		})
		var le *CARLimitError
		if !errors.Is(err, ErrDAGTooLarge) || !errors.As(err, &le) || !le.CID.Equals(root) {
			t.Fatalf("walk %d of a bomb declaring %d bytes: %v, want a CARLimitError", i, declared, err)
		}
		total += cw.n
		t.Logf("walk %d: %d bytes read: %v", i, cw.n, err)
	}
	if total > budget {
		t.Fatalf("five walks read %d bytes, over the budget of %d for %d bytes of CAR", total, budget, set.bytes)
	}

	// 64 MiB of zeros: 256 leaves of one distinct 256 KiB block.
	repo := filepath.Join(dir, "repo")
	if _, err := Init(repo, Config{Profile: ProfileAirGapped}); err != nil {
		t.Fatal(err)
	}
	n, err := Open(context.Background(), repo, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	zeros := bytes.Repeat([]byte{0}, 64<<20)
	c := addPinned(t, n, zeros)
	zcar := filepath.Join(dir, "zeros.car")
	if _, err := n.ExportCARFile(context.Background(), c, zcar); err != nil {
		t.Fatal(err)
	}
	zset, err := OpenCARs([]string{zcar})
	if err != nil {
		t.Fatal(err)
	}
	defer zset.Close()
	var got bytes.Buffer
	if _, err := zset.ReadFile(context.Background(), c, 0, &got); err != nil || !bytes.Equal(got.Bytes(), zeros) {
		t.Fatalf("64 MiB of zeros from a %d byte CAR: %d bytes, %v", zset.bytes, got.Len(), err)
	}
}
