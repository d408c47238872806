package ops

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/store"
)

// BackupFormat names the archive format in its manifest.
const BackupFormat = "cvd-backup 1"

// Names inside a backup archive.
const (
	manifestName = "MANIFEST.json"
	configName   = "cvd.toml"
	dataPrefix   = "data/"     // files under the data folder, by their path there
	extPrefix    = "external/" // files elsewhere, by their absolute path
)

// Manifest describes a backup archive; it is its first entry.
type Manifest struct {
	Format  string    `json:"format"`
	Created time.Time `json:"created"`
	Version string    `json:"cvd_version"`
	Schema  int       `json:"schema"`
	Domain  string    `json:"domain"`
	// DataDir is the data folder the backup was taken from: on restore,
	// the configuration's paths into it are made relative.
	DataDir string `json:"data_dir,omitempty"`
	// Database is the archive entry of the database snapshot.
	Database string       `json:"database"`
	Files    []BackupFile `json:"files"`
}

// BackupFile is one file in a backup archive.
type BackupFile struct {
	Name   string `json:"name"` // entry name in the archive
	Key    string `json:"key"`  // the configuration key naming it
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// BackupOptions are the choices of a backup.
type BackupOptions struct {
	// To, when set, is the administrator's public key the archive is
	// encrypted to; Signer (the project key) signs it then.
	To, Signer *crypto.Key
	Version    string
	Now        time.Time
}

// maxBackupFile bounds one file restored from an archive (the database
// included): an archive is trusted no further than its checksums.
const maxBackupFile = 1 << 40

// Backup writes to out (a new file; a partial one is removed on failure)
// a gzip'd tar archive of c's installation: the configuration file, a
// snapshot of the database taken while cvd runs, the project's OpenPGP
// key, the TLS and DKIM keys, the team's and roster's key files, the
// relay's password and CA files and the templates folder. With opts.To
// the archive is encrypted to that key.
func Backup(ctx context.Context, c *config.Config, db *store.DB, out string, opts BackupOptions) (*Manifest, error) {
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	m, err := backup(ctx, c, db, f, filepath.Dir(out), opts)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
		return nil, fmt.Errorf("backup to %s: %w", out, err)
	}
	return m, nil
}

func backup(ctx context.Context, c *config.Config, db *store.DB, w io.Writer, tmpDir string, opts BackupOptions) (*Manifest, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	snap, err := os.MkdirTemp(tmpDir, ".cvd-backup-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(snap)
	dbFile := filepath.Join(snap, "cvd.db")
	if err := db.Snapshot(ctx, dbFile); err != nil {
		return nil, err
	}

	m := &Manifest{Format: BackupFormat, Created: opts.Now.UTC(), Version: opts.Version, Schema: store.SchemaVersion(), Domain: c.Domain, DataDir: c.DataDir}
	type source struct{ file, name, key string }
	var srcs []source
	add := func(key, file string) {
		if file == "" {
			return
		}
		if _, err := os.Stat(file); err != nil {
			return
		}
		for _, s := range srcs {
			if s.file == file {
				return
			}
		}
		srcs = append(srcs, source{file, entryName(c.DataDir, file), key})
	}
	dbName := dataPrefix + "cvd.db"
	if rel, ok := under(c.DataDir, c.Database); ok {
		dbName = dataPrefix + rel
	}
	m.Database = dbName
	add("pgp.key_file", c.PGP.KeyFile)
	add("pgp.public_file", c.PGP.PublicFile)
	add("tls.cert_file", c.TLS.CertFile)
	add("tls.key_file", c.TLS.KeyFile)
	for _, k := range c.DKIM.Keys {
		add("dkim."+k.Kind+"_key_file", k.KeyFile)
	}
	add("delivery.password_file", c.Delivery.PasswordFile)
	add("delivery.ca_file", c.Delivery.CAFile)
	for _, p := range c.Embargo.Team {
		add("embargo.team.key_file", p.KeyFile)
	}
	for _, p := range c.Embargo.Roster {
		add("embargo.roster.key_file", p.KeyFile)
	}
	if c.TemplatesDir != "" {
		err := filepath.WalkDir(c.TemplatesDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				add("templates_dir", p)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("templates_dir: %w", err)
		}
	}

	var enc io.WriteCloser
	if opts.To != nil {
		if enc, err = crypto.EncryptStream(w, opts.To, opts.Signer, "cvd-backup.tar.gz", opts.Now); err != nil {
			return nil, err
		}
		w = enc
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	// The manifest comes first and carries every checksum: the files are
	// hashed before they are archived.
	cfgFile := c.File
	if c.Embedded {
		// The built-in configuration becomes a file, so that the restored
		// folder runs with 'cvd serve --config'.
		cfgFile = filepath.Join(snap, configName)
		if err := os.WriteFile(cfgFile, config.DefaultText(), 0o600); err != nil {
			return nil, err
		}
	}
	entries := append([]source{{cfgFile, configName, "(configuration)"}, {dbFile, dbName, "database"}}, srcs...)
	for _, e := range entries {
		size, sum, err := hashFile(e.file)
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, BackupFile{Name: e.name, Key: e.key, Size: size, SHA256: sum})
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeEntry(tw, manifestName, int64(len(mj)), 0o600, opts.Now, bytes.NewReader(mj)); err != nil {
		return nil, err
	}
	for i, e := range entries {
		if err := copyEntry(tw, e.file, e.name, m.Files[i], opts.Now); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	if enc != nil {
		if err := enc.Close(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// entryName is where file goes in the archive.
func entryName(dataDir, file string) string {
	if rel, ok := under(dataDir, file); ok {
		return dataPrefix + rel
	}
	return extPrefix + strings.TrimPrefix(filepath.ToSlash(file), "/")
}

// under returns file's path relative to dir when it lies inside it.
func under(dir, file string) (string, bool) {
	rel, err := filepath.Rel(dir, file)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

func hashFile(file string) (int64, string, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", file, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func copyEntry(tw *tar.Writer, file, name string, bf BackupFile, at time.Time) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	// The file may not change between hashing and archiving (it is a
	// snapshot or a key); a change is caught by the checksum on restore.
	h := sha256.New()
	if err := writeEntry(tw, name, bf.Size, 0o600, at, io.TeeReader(f, h)); err != nil {
		return fmt.Errorf("archive %s: %w", file, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != bf.SHA256 {
		return fmt.Errorf("archive %s: the file changed while it was archived; run the backup again", file)
	}
	return nil
}

func writeEntry(tw *tar.Writer, name string, size int64, mode int64, at time.Time, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: mode, ModTime: at.UTC(), Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := io.CopyN(tw, r, size)
	return err
}

// Restored is what Restore wrote.
type Restored struct {
	Manifest *Manifest
	Config   string   // the restored configuration file
	Files    []string // every file written
	// External are files the configuration names outside its data
	// folder: restored under DIR/external, to be put back by hand.
	External []string
	// Rewritten are the absolute paths into the backup's data folder
	// that the configuration named, now relative to DIR.
	Rewritten []string
}

// ErrEncryptedBackup is returned by Restore for an OpenPGP-encrypted archive.
var ErrEncryptedBackup = errors.New("the backup is encrypted")

// Restore unpacks a backup archive read from r into dir, which must be
// empty or not exist: DIR/cvd.toml (its data folder set to DIR), the
// database and every other file at its place under DIR. Each file is
// checked against the manifest's checksum and the database with SQLite's
// integrity check. An archive encrypted with 'cvd backup --to' is refused
// with ErrEncryptedBackup: decrypt it first (gpg --decrypt).
func Restore(ctx context.Context, r io.Reader, dir string) (*Restored, error) {
	if err := emptyDir(dir); err != nil {
		return nil, err
	}
	res, err := restore(ctx, r, dir)
	if err != nil {
		// The folder was empty: nothing of a failed restore stays.
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
		return nil, err
	}
	return res, nil
}

func restore(ctx context.Context, r io.Reader, dir string) (*Restored, error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(2)
	if len(head) < 2 || head[0] != 0x1f || head[1] != 0x8b {
		if len(head) > 0 && (head[0]&0x80 != 0 || head[0] == '-') {
			return nil, fmt.Errorf("%w: decrypt it first, e.g. gpg --decrypt FILE | cvd restore - --dir %s", ErrEncryptedBackup, dir)
		}
		return nil, errors.New("not a cvd backup (no gzip'd archive)")
	}
	gz, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("not a cvd backup: %w", err)
	}
	tr := tar.NewReader(gz)
	hd, err := tr.Next()
	if err != nil || hd.Name != manifestName || hd.Size > 1<<20 {
		return nil, errors.New("not a cvd backup: the archive does not start with its manifest")
	}
	var m Manifest
	if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("not a cvd backup: manifest: %w", err)
	}
	if m.Format != BackupFormat {
		return nil, fmt.Errorf("backup format %q: this cvd reads %q", m.Format, BackupFormat)
	}
	if m.Schema > store.SchemaVersion() {
		return nil, fmt.Errorf("the backup's database has schema version %d, this cvd knows up to %d: restore it with a newer cvd", m.Schema, store.SchemaVersion())
	}
	want := map[string]BackupFile{}
	for _, f := range m.Files {
		if err := checkEntryName(f.Name); err != nil {
			return nil, err
		}
		want[f.Name] = f
	}
	if _, ok := want[m.Database]; !ok {
		return nil, fmt.Errorf("damaged backup: the manifest lists no database %q", m.Database)
	}
	if _, ok := want[configName]; !ok {
		return nil, errors.New("damaged backup: the manifest lists no configuration")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	res := &Restored{Manifest: &m}
	done := map[string]bool{}
	var configText []byte
	for {
		hd, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("damaged backup: %w", err)
		}
		f, ok := want[hd.Name]
		switch {
		case !ok:
			return nil, fmt.Errorf("damaged backup: %q is not in the manifest", hd.Name)
		case done[hd.Name]:
			return nil, fmt.Errorf("damaged backup: %q twice", hd.Name)
		case hd.Typeflag != tar.TypeReg:
			return nil, fmt.Errorf("damaged backup: %q is not a regular file", hd.Name)
		case hd.Size != f.Size || hd.Size > maxBackupFile:
			return nil, fmt.Errorf("damaged backup: %q has %d bytes, the manifest says %d", hd.Name, hd.Size, f.Size)
		}
		done[hd.Name] = true
		if hd.Name == configName {
			if hd.Size > 1<<20 {
				return nil, errors.New("damaged backup: the configuration is larger than 1 MiB")
			}
			if configText, err = io.ReadAll(tr); err != nil {
				return nil, fmt.Errorf("damaged backup: %w", err)
			}
			if sha(configText) != f.SHA256 {
				return nil, fmt.Errorf("damaged backup: %s does not match its checksum", configName)
			}
			continue
		}
		dest := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(hd.Name, dataPrefix)))
		if strings.HasPrefix(hd.Name, extPrefix) {
			dest = filepath.Join(dir, filepath.FromSlash(hd.Name))
			res.External = append(res.External, "/"+strings.TrimPrefix(hd.Name, extPrefix))
		}
		if err := restoreFile(tr, dest, f); err != nil {
			return nil, err
		}
		res.Files = append(res.Files, dest)
	}
	for name := range want {
		if !done[name] {
			return nil, fmt.Errorf("damaged backup: %q is missing", name)
		}
	}

	dbFile := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(m.Database, dataPrefix)))
	oldDir := m.DataDir
	if oldDir == "" {
		oldDir = absDataDir(configText)
	}
	text, rewritten := rewritePaths(configText, oldDir)
	for _, p := range rewritten {
		if filepath.Clean(p) != oldDir {
			res.Rewritten = append(res.Rewritten, p)
		}
	}
	text = rewriteTopLevel(text, "data_dir", `"."`)
	text = rewriteTopLevel(text, "database", fmt.Sprintf("%q", strings.TrimPrefix(m.Database, dataPrefix)))
	res.Config = filepath.Join(dir, configName)
	if err := os.WriteFile(res.Config, text, 0o600); err != nil {
		return nil, err
	}
	res.Files = append([]string{res.Config}, res.Files...)
	c, err := config.Load(res.Config)
	if err != nil {
		return nil, fmt.Errorf("restored configuration: %w", err)
	}
	if c.Database != dbFile {
		return nil, fmt.Errorf("restored configuration names the database %s, restored to %s", c.Database, dbFile)
	}
	db, err := store.Open(ctx, dbFile)
	if err != nil {
		return nil, err
	}
	if err := db.IntegrityCheck(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.Close(); err != nil {
		return nil, err
	}
	sort.Strings(res.External)
	return res, nil
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkEntryName refuses a name that would land outside the restore folder.
func checkEntryName(name string) error {
	switch {
	case name == configName:
		return nil
	case strings.HasPrefix(name, dataPrefix), strings.HasPrefix(name, extPrefix):
	default:
		return fmt.Errorf("damaged backup: unexpected entry %q", name)
	}
	if strings.Contains(name, "\\") || strings.Contains(name, "\x00") || path.Clean(name) != name || strings.Contains("/"+name+"/", "/../") {
		return fmt.Errorf("damaged backup: entry %q leaves the restore folder", name)
	}
	return nil
}

func restoreFile(r io.Reader, dest string, f BackupFile) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("restore %s: %w", dest, err)
	}
	h := sha256.New()
	_, err = io.CopyN(io.MultiWriter(out, h), r, f.Size)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w", dest, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		return fmt.Errorf("damaged backup: %s does not match its checksum", f.Name)
	}
	return nil
}

// emptyDir refuses a folder that exists and holds anything.
func emptyDir(dir string) error {
	es, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(es) > 0 {
		return fmt.Errorf("%s is not empty: restore into a new folder", dir)
	}
	return nil
}

var tableRE = regexp.MustCompile(`(?m)^\s*\[`)

// rewriteTopLevel sets the top-level key (before any table) to value in
// TOML text, replacing its line or adding one at the top.
func rewriteTopLevel(text []byte, key, value string) []byte {
	top := text
	if loc := tableRE.FindIndex(text); loc != nil {
		top = text[:loc[0]]
	}
	re := regexp.MustCompile(`(?m)^[ \t]*` + regexp.QuoteMeta(key) + `[ \t]*=.*$`)
	line := []byte(key + " = " + value)
	if loc := re.FindIndex(top); loc != nil {
		return append(append(append([]byte{}, text[:loc[0]]...), line...), text[loc[1]:]...)
	}
	return append(append(line, '\n'), text...)
}
