package release

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"fmt"
	"hash/crc32"
	"io"
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
// local header (compressed first, then written raw) so there are no data
// descriptors. archive/zip does the format; only the header fields that
// would otherwise vary are set by hand.
func writeZip(w io.Writer, entries []zipEntry, mod time.Time) error {
	date, tm := msDosTime(mod)
	zw := zip.NewWriter(w)
	for _, e := range entries {
		var comp bytes.Buffer
		fw, err := flate.NewWriter(&comp, deflateLevel)
		if err != nil {
			return err
		}
		r, err := e.open()
		if err != nil {
			return err
		}
		crc := crc32.NewIEEE()
		n, err := io.Copy(io.MultiWriter(fw, crc), r)
		r.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", e.name, err)
		}
		if err := fw.Close(); err != nil {
			return err
		}
		fh := &zip.FileHeader{
			Name:               e.name,
			Method:             zip.Deflate,
			ModifiedDate:       date,
			ModifiedTime:       tm,
			CRC32:              crc.Sum32(),
			CompressedSize64:   uint64(comp.Len()),
			UncompressedSize64: uint64(n),
		}
		fh.SetMode(0o644)
		fh.CreatorVersion = fh.CreatorVersion&0xff00 | 20
		fh.ReaderVersion = 20
		out, err := zw.CreateRaw(fh)
		if err != nil {
			return err
		}
		if _, err := out.Write(comp.Bytes()); err != nil {
			return err
		}
	}
	return zw.Close()
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
