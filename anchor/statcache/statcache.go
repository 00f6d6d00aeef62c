// Package statcache remembers, for each file an anchoring run read, the
// file's metadata (size, modification time, change time, inode, device)
// and the SHA-256 the run computed from its bytes, so the next run can
// tell an unchanged file without reading it, as git's index and restic's
// parent snapshot do.
//
// It is only ever used to skip a file whose content the manifest already
// records: a file whose metadata differs in any way is read and hashed
// again, and a new record's hash always comes from reading the file, never
// from here. verify does not use it.
//
// Why the metadata is enough: writing a file's bytes updates its change
// time (ctime) to the kernel's current time, and nothing but the kernel
// sets ctime (touch -d and utimes set mtime back, and update ctime doing
// so); replacing a file by rename gives a new inode. The one gap is a
// change within the same timestamp tick as the stat this cache recorded
// (a "racily clean" entry, in git's words): entries whose mtime or ctime
// is within RacyWindow of the run's start are not kept, so such files are
// read again next time. Times are compared with this machine's clock, so a
// tree on a file server whose clock runs more than RacyWindow behind it
// narrows that guard.
//
// The cache file is rewritten whole (temp file, rename) and carries a
// SHA-256 of its content: a missing, torn, foreign or corrupt cache is
// treated as empty, which only costs reading every file once.
package statcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// FileName is the cache's file in the IPFS repo directory (beside kubo's
// own files; stock kubo ignores it).
const FileName = "ssid-anchor-stat-cache"

// Stat is the metadata compared: any difference means the file is read.
type Stat struct {
	Size    int64
	MtimeNS int64
	CtimeNS int64
	Ino     uint64
	Dev     uint64
}

// RacyWindow is how close to a run's start an entry's mtime or ctime may
// be and still be kept: timestamps have a granularity (a kernel tick,
// whole seconds on some file systems), and a write in the same tick as
// the recorded stat would leave both times unchanged.
const RacyWindow = 3 * time.Second

// magic starts every cache file; the version changes with the format.
const magic = "ssid-anchor stat cache v1\n"

// maxFile bounds what Load reads: a cache of a million files is about
// 150 MB; anything larger is not one of ours.
const maxFile = 256 << 20

type entry struct {
	path string
	st   Stat
	hash [sha256.Size]byte
}

// Cache is a loaded cache file, read-only.
type Cache struct {
	entries []entry // sorted by path, unique
}

// Load reads the cache at file for the tree rooted at root. A missing,
// unreadable, corrupt or foreign cache gives an empty one; why says which
// (for the debug log), "" when it was read.
func Load(file, root string) (c *Cache, why string) {
	c = &Cache{}
	b, err := readFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return c, "no stat cache yet"
	}
	if err != nil {
		return c, err.Error()
	}
	entries, err := decode(b, root)
	if err != nil {
		return c, fmt.Sprintf("stat cache %s ignored: %v", file, err)
	}
	c.entries = entries
	return c, ""
}

func readFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxFile {
		return nil, fmt.Errorf("stat cache %s ignored: not a regular file of at most %d MiB", file, maxFile>>20)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

// Len is the number of entries.
func (c *Cache) Len() int { return len(c.entries) }

// Lookup returns the SHA-256 (hex) recorded for path when its metadata
// then was st exactly.
func (c *Cache) Lookup(path string, st Stat) (string, bool) {
	i, ok := slices.BinarySearchFunc(c.entries, path, func(e entry, p string) int { return strings.Compare(e.path, p) })
	if !ok || c.entries[i].st != st {
		return "", false
	}
	return hex.EncodeToString(c.entries[i].hash[:]), true
}

// Next starts the cache the run will write: every entry of c, updated by
// what the run reads. start is when the run began, before its first stat.
func (c *Cache) Next(root string, start time.Time) *Builder {
	return &Builder{root: root, start: start, old: c.entries}
}

// Builder collects the next cache.
type Builder struct {
	root    string
	start   time.Time
	old     []entry
	updates []update
}

type update struct {
	e    entry
	drop bool
}

// Add records that path, whose metadata was st before it was read and
// unchanged after, has the SHA-256 hash (hex).
func (b *Builder) Add(path string, st Stat, hash string) {
	var h [sha256.Size]byte
	if n, err := hex.Decode(h[:], []byte(hash)); err != nil || n != len(h) {
		b.Drop(path)
		return
	}
	b.updates = append(b.updates, update{e: entry{path: path, st: st, hash: h}})
}

// Drop forgets path (it could not be read, or changed while it was).
func (b *Builder) Drop(path string) {
	b.updates = append(b.updates, update{e: entry{path: path}, drop: true})
}

// entries merges the old entries with the updates (the last update of a
// path wins) and leaves out racy ones.
func (b *Builder) entries() []entry {
	slices.SortStableFunc(b.updates, func(x, y update) int { return strings.Compare(x.e.path, y.e.path) })
	limit := b.start.Add(-RacyWindow).UnixNano()
	out := make([]entry, 0, len(b.old)+len(b.updates))
	keep := func(e entry) {
		if e.st.MtimeNS < limit && e.st.CtimeNS < limit {
			out = append(out, e)
		}
	}
	i, j := 0, 0
	for i < len(b.old) || j < len(b.updates) {
		if j == len(b.updates) || (i < len(b.old) && b.old[i].path < b.updates[j].e.path) {
			keep(b.old[i])
			i++
			continue
		}
		// The last update of this path decides; an old entry of it goes.
		p := b.updates[j].e.path
		for j+1 < len(b.updates) && b.updates[j+1].e.path == p {
			j++
		}
		if !b.updates[j].drop {
			keep(b.updates[j].e)
		}
		j++
		for i < len(b.old) && b.old[i].path == p {
			i++
		}
	}
	return out
}

// Write replaces the cache at file with the merged entries: a temp file
// beside it, then rename. It is not fsynced: a cache torn by a crash
// fails its checksum and is ignored, which costs a full read, nothing
// more. Temp files a killed run left are removed.
func (b *Builder) Write(file string) error {
	data := encode(b.root, b.entries())
	dir := filepath.Dir(file)
	if old, _ := filepath.Glob(filepath.Join(dir, "."+filepath.Base(file)+".tmp-*")); len(old) > 0 {
		for _, p := range old {
			os.Remove(p)
		}
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing the stat cache: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, file)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing the stat cache: %w", werr)
	}
	return nil
}

// The file: magic, the root (uvarint length, bytes), the entry count
// (uvarint), the entries sorted by path (uvarint path length, path, size,
// mtime, ctime as varints, inode, device as uvarints, 32 bytes of
// SHA-256), then the SHA-256 of everything before it.
func encode(root string, entries []entry) []byte {
	b := make([]byte, 0, len(magic)+len(root)+16+len(entries)*(sha256.Size+48+64)+sha256.Size)
	b = append(b, magic...)
	b = binary.AppendUvarint(b, uint64(len(root)))
	b = append(b, root...)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for i := range entries {
		e := &entries[i]
		b = binary.AppendUvarint(b, uint64(len(e.path)))
		b = append(b, e.path...)
		b = binary.AppendVarint(b, e.st.Size)
		b = binary.AppendVarint(b, e.st.MtimeNS)
		b = binary.AppendVarint(b, e.st.CtimeNS)
		b = binary.AppendUvarint(b, e.st.Ino)
		b = binary.AppendUvarint(b, e.st.Dev)
		b = append(b, e.hash[:]...)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

var errCorrupt = errors.New("corrupt (its checksum or structure does not hold)")

func decode(b []byte, root string) ([]entry, error) {
	if len(b) < len(magic)+sha256.Size || !bytes.HasPrefix(b, []byte(magic)) {
		return nil, errors.New("not a stat cache of this version")
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, errCorrupt
	}
	r := reader{b: body[len(magic):]}
	if got := string(r.bytes()); r.err != nil || got != root {
		if r.err != nil {
			return nil, errCorrupt
		}
		return nil, fmt.Errorf("written for the tree at %s, not %s", got, root)
	}
	n := r.uvarint()
	if r.err != nil || n > uint64(len(body)) {
		return nil, errCorrupt
	}
	// One string holds every path; the entries' paths are slices of it.
	text := string(body)
	entries := make([]entry, 0, n)
	for range n {
		p := r.bytes()
		if r.err != nil {
			return nil, errCorrupt
		}
		var e entry
		start := len(body) - len(r.b) - len(p) // r.b is what follows p
		e.path = text[start : start+len(p)]
		e.st.Size = r.varint()
		e.st.MtimeNS = r.varint()
		e.st.CtimeNS = r.varint()
		e.st.Ino = r.uvarint()
		e.st.Dev = r.uvarint()
		copy(e.hash[:], r.take(sha256.Size))
		if r.err != nil {
			return nil, errCorrupt
		}
		if len(entries) > 0 && entries[len(entries)-1].path >= e.path {
			return nil, errCorrupt
		}
		entries = append(entries, e)
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, errCorrupt
	}
	return entries, nil
}

// reader decodes the format; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = errCorrupt
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errCorrupt
		return nil
	}
	return r.take(int(n))
}
