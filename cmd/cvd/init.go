package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/mailserver"
	"github.com/cvd-project/cvd/ops"
	"github.com/cvd-project/cvd/store"
)

func cmdInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("init")
	dir := fs.String("dir", "", "folder to create the configuration in")
	domain := fs.String("domain", "", "the project's mail domain")
	keyType := fs.String("key-type", crypto.KindCurve25519, "OpenPGP key type: curve25519 or rsa4096")
	force := fs.Bool("force", false, "overwrite an existing cvd.toml")
	project := fs.String("project", "", "the project's name (default: the domain), in the key's user ID, notices and advisories")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *domain == "" {
		return fmt.Errorf("init: --dir and --domain are required: %w", errUsage)
	}
	if *keyType != crypto.KindCurve25519 && *keyType != crypto.KindRSA4096 {
		return fmt.Errorf("init: --key-type %q: use curve25519 or rsa4096: %w", *keyType, errUsage)
	}
	text, err := config.Example(*domain)
	if err != nil {
		return fmt.Errorf("init: --domain %q: %v: %w", *domain, err, errUsage)
	}
	if *project != "" {
		if text, err = config.WithProject(text, *project); err != nil {
			return fmt.Errorf("init: --project: %v: %w", err, errUsage)
		}
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	path := filepath.Join(*dir, "cvd.toml")
	if !*force {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("init: %s exists; use --force to overwrite it (keys and certificate are kept)", path)
		}
	}
	if err := ops.WriteFile(path, []byte(text), 0o600, true); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	c, err := config.Load(path)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	created, err := provision(c, *keyType)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	made, err := initDatabase(c)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	created = append(created, made...)
	fmt.Fprintf(stdout, "wrote %s\n", path)
	for _, f := range created {
		fmt.Fprintf(stdout, "wrote %s\n", f)
	}
	fmt.Fprintf(stdout, "run: cvd serve --config %s\n", path)
	return nil
}

// provision creates what a configuration needs on disk and is missing: the
// data folder, the project's OpenPGP key, the TLS certificate and the DKIM
// keys. Existing
// files are never replaced. It returns the files it wrote.
func provision(c *config.Config, keyType string) ([]string, error) {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	var created []string
	if !exists(c.PGP.KeyFile) {
		priv, pub, err := crypto.GenerateKey(c.Embargo.Project+" security team", "security@"+c.Domain, keyType)
		if err != nil {
			return nil, fmt.Errorf("generate the project key: %w", err)
		}
		if err := ops.WriteFile(c.PGP.KeyFile, priv, 0o600, false); err != nil {
			return nil, err
		}
		created = append(created, c.PGP.KeyFile)
		if err := ops.WriteFile(c.PGP.PublicFile, pub, 0o644, true); err != nil {
			return nil, err
		}
		created = append(created, c.PGP.PublicFile)
	}
	if !exists(c.TLS.CertFile) && !exists(c.TLS.KeyFile) {
		cert, key, err := mailserver.SelfSignedCert([]string{c.Hostname}, time.Now())
		if err != nil {
			return nil, err
		}
		if err := ops.WriteFile(c.TLS.KeyFile, key, 0o600, false); err != nil {
			return nil, err
		}
		if err := ops.WriteFile(c.TLS.CertFile, cert, 0o644, false); err != nil {
			return nil, err
		}
		created = append(created, c.TLS.CertFile, c.TLS.KeyFile)
	}
	made, err := provisionDKIM(c)
	return append(created, made...), err
}

// initDatabase creates the database with its schema and the announce
// list, so that every admin command works before the first 'cvd serve'.
// It returns the database's path when it was created.
func initDatabase(c *config.Config) ([]string, error) {
	fresh := !exists(c.Database)
	ctx := context.Background()
	key, err := loadProjectKey(c)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, c.Database)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := listService(c, db, key, slog.New(slog.DiscardHandler)).EnsureAnnounceList(ctx); err != nil {
		return nil, fmt.Errorf("create the announce list: %w", err)
	}
	if err := db.Close(); err != nil {
		return nil, err
	}
	if !fresh {
		return nil, nil
	}
	return []string{c.Database}, nil
}

// provisionDKIM generates the DKIM key files of c that are missing.
func provisionDKIM(c *config.Config) ([]string, error) {
	if !c.DKIM.Enabled {
		return nil, nil
	}
	var created []string
	for _, k := range c.DKIM.Keys {
		if exists(k.KeyFile) {
			continue
		}
		pem, err := mailserver.GenerateDKIMKey(k.Kind)
		if err != nil {
			return created, err
		}
		if err := ops.WriteFile(k.KeyFile, pem, 0o600, false); err != nil {
			return created, err
		}
		created = append(created, k.KeyFile)
	}
	return created, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
