package mailserver

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Maildir is a folder in Maildir format, used as cvd's local outbox.
type Maildir struct {
	Dir      string
	Hostname string
}

// OpenMaildir creates (if needed) the Maildir at dir with mode 0700.
func OpenMaildir(dir, hostname string) (*Maildir, error) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("create maildir %s: %w", dir, err)
		}
	}
	return &Maildir{Dir: dir, Hostname: hostname}, nil
}

// Deliver writes raw durably into new/ and returns the file name.
func (m *Maildir) Deliver(raw []byte, now time.Time) (string, error) {
	return m.DeliverParts(now, raw)
}

// DeliverParts is Deliver for the message made of parts, one after
// another, written as they are, never joined in memory.
func (m *Maildir) DeliverParts(now time.Time, parts ...[]byte) (string, error) {
	return m.DeliverFrom(now, func(write func([]byte) error) error {
		for _, p := range parts {
			if err := write(p); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeliverFrom is Deliver for the message each gives piece by piece (by
// calling write). When each fails, nothing is delivered: the file is
// removed from tmp/ and never reaches new/.
func (m *Maildir) DeliverFrom(now time.Time, each func(write func([]byte) error) error) (string, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("maildir %s: %w", m.Dir, err)
	}
	name := strconv.FormatInt(now.Unix(), 10) + ".M" + strconv.Itoa(now.Nanosecond()/1000) + "R" + hex.EncodeToString(rnd[:]) + "." + m.Hostname
	tmp := filepath.Join(m.Dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("maildir %s: %w", m.Dir, err)
	}
	err = each(func(p []byte) error {
		_, err := f.Write(p)
		return err
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(m.Dir, "new", name))
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("maildir %s: write %s: %w", m.Dir, name, err)
	}
	return name, syncDir(filepath.Join(m.Dir, "new"))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
