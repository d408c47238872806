package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/cvd-project/cvd/crypto"
	"github.com/cvd-project/cvd/ops"
)

func cmdBackup(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backup")
	cfgPath := fs.String("config", "", "configuration file")
	to := fs.String("to", "", "an administrator's OpenPGP public key file: encrypt the backup to it")
	pos, err := splitArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("backup: name the file to write: cvd backup FILE: %w", errUsage)
	}
	var opts ops.BackupOptions
	opts.Now, opts.Version = now(), versionString()
	if *to != "" {
		b, err := os.ReadFile(*to)
		if err != nil {
			return fmt.Errorf("backup: --to: %w", err)
		}
		if opts.To, err = crypto.ParseKey(b); err != nil {
			return fmt.Errorf("backup: --to %s: %w", *to, err)
		}
		opts.To = opts.To.Public()
	}
	ctx := context.Background()
	c, db, err := openDB(ctx, *cfgPath, true)
	if err != nil {
		return err
	}
	defer db.Close()
	if opts.To != nil {
		if opts.Signer, err = loadProjectKey(c); err != nil {
			return err
		}
	}
	m, err := ops.Backup(ctx, c, db, pos[0], opts)
	if err != nil {
		return err
	}
	var size int64
	for _, f := range m.Files {
		size += f.Size
	}
	how := "not encrypted: keep it as safe as the keys it holds"
	if opts.To != nil {
		how = "encrypted to " + opts.To.Fingerprint()
	}
	fmt.Fprintf(stdout, "wrote %s: %d files, %d bytes before compression, database schema %d (%s)\n", pos[0], len(m.Files), size, m.Schema, how)
	return nil
}

func cmdRestore(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("restore")
	dir := fs.String("dir", "", "a new folder to restore into")
	pos, err := splitArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *dir == "" {
		return fmt.Errorf("restore: use 'cvd restore FILE --dir DIR' (FILE - reads standard input): %w", errUsage)
	}
	in := io.Reader(os.Stdin)
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		defer f.Close()
		in = f
	}
	res, err := ops.Restore(context.Background(), in, *dir)
	if err != nil {
		return fmt.Errorf("restore %s: %w", pos[0], err)
	}
	for _, f := range res.Files {
		fmt.Fprintf(stdout, "wrote %s\n", f)
	}
	for _, f := range res.Rewritten {
		fmt.Fprintf(stdout, "note: the configuration named %s, in the backup's data folder: it now names its restored copy in %s\n", f, *dir)
	}
	for _, f := range res.External {
		fmt.Fprintf(stdout, "note: the configuration names %s, outside its data folder; its copy is under %s/external: put it back or change the key\n", f, *dir)
	}
	fmt.Fprintf(stdout, "backup of %s taken %s (cvd %s); database checked\nrun: cvd serve --config %s\n",
		res.Manifest.Domain, res.Manifest.Created.Format("2006-01-02 15:04:05Z07:00"), res.Manifest.Version, res.Config)
	return nil
}
