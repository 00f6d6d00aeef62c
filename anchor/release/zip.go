package release

import (
	"archive/zip"
	"compress/flate"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"
)

// deflateLevel is fixed: the bytes of a bundle must not depend on a default
// that could change. Go's compress/flate is deterministic for a given level
// and Go release.
const deflateLevel = flate.BestCompression

// zipEntry is one flat entry of the bundle.
type zipEntry struct {
	name string
	open func() (io.ReadCloser, error)
}

// writeZip writes a reproducible zip of entries to w: every entry has the
// same modification time (MS-DOS fields only, so no extended-timestamp extra
// field), Unix mode 0644, deflate at deflateLevel, and sizes and CRC in the
// local header so there are no data descriptors. archive/zip does the
// format; only the header fields that would otherwise vary are set by hand.
//
// The local header comes before the data but must carry the compressed
// size, so each entry is compressed once into spill (a scratch file next
// to the bundle, emptied per entry) and copied from there: memory stays at
// the compressor's window whatever the inputs weigh (a bundle of a 10 GB
// log needs no 10 GB buffer). ctx is checked between entries and at every
// read inside one, so SIGINT stops a long bundle at once (SPEC 4.7).
func writeZip(ctx context.Context, w io.Writer, spill *os.File, entries []zipEntry, mod time.Time) error {
	date, tm := msDosTime(mod)
	zw := zip.NewWriter(w)
	fw, err := flate.NewWriter(io.Discard, deflateLevel)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := spill.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := spill.Truncate(0); err != nil {
			return err
		}
		comp := &countWriter{w: spill}
		fw.Reset(comp)
		r, err := e.open()
		if err != nil {
			return err
		}
		crc := crc32.NewIEEE()
		n, err := io.Copy(io.MultiWriter(fw, crc), ctxReader{ctx, r})
		r.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", e.name, err)
		}
		if err := fw.Close(); err != nil {
			return fmt.Errorf("compressing %s: %w", e.name, err)
		}
		fh := &zip.FileHeader{
			Name:               e.name,
			Method:             zip.Deflate,
			ModifiedDate:       date,
			ModifiedTime:       tm,
			CRC32:              crc.Sum32(),
			CompressedSize64:   uint64(comp.n),
			UncompressedSize64: uint64(n),
		}
		fh.SetMode(0o644)
		fh.CreatorVersion = fh.CreatorVersion&0xff00 | 20
		fh.ReaderVersion = 20
		out, err := zw.CreateRaw(fh)
		if err != nil {
			return err
		}
		if _, err := spill.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.Copy(out, ctxReader{ctx, io.LimitReader(spill, comp.n)}); err != nil {
			return fmt.Errorf("writing %s: %w", e.name, err)
		}
	}
	return zw.Close()
}

// ctxReader ends a read once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// countWriter counts what goes through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// msDosTime encodes t (taken as is, UTC) in the MS-DOS date and time fields:
// two-second resolution, years 1980..2107 (t is clamped to that range, as
// reproducible-builds tools do with SOURCE_DATE_EPOCH).
func msDosTime(t time.Time) (date, tm uint16) {
	t = t.UTC()
	lo := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	hi := time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
	if t.Before(lo) {
		t = lo
	}
	if t.After(hi) {
		t = hi
	}
	date = uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9)
	tm = uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	return date, tm
}
