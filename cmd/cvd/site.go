package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/cvd-project/cvd/embargo"
	"github.com/cvd-project/cvd/publish"
)

// staticEvery is how often cvd serve rebuilds web.static_dir.
const staticEvery = time.Minute

func cmdSite(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "build" {
		return fmt.Errorf("site: use 'cvd site build [DIR]': %w", errUsage)
	}
	fs := newFlags("site build")
	cfgPath := fs.String("config", "", "configuration file")
	pos, err := splitArgs(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("site build: unexpected argument %q: %w", pos[1], errUsage)
	}
	return withDesk(*cfgPath, func(ctx context.Context, d *embargo.Desk) error {
		c, err := loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		dir := c.Web.StaticDir
		if len(pos) == 1 {
			dir = pos[0]
		}
		if dir == "" {
			return fmt.Errorf("site build: name the folder (cvd site build DIR) or set web.static_dir in %s: %w", c.File, errUsage)
		}
		site, err := newSite(c, d, d.Key)
		if err != nil {
			return err
		}
		if err := site.BuildStatic(ctx, dir); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote the site to %s (security.txt expires in %s: build again before)\n", dir, c.Web.ExpiresIn)
		return nil
	})
}

// keepStatic writes the site to dir now and every staticEvery, so that a
// static copy follows releases and security.txt's Expires. stop waits for
// a build in progress.
func keepStatic(ctx context.Context, site *publish.Site, dir string, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	build := func() {
		if err := site.BuildStatic(ctx, dir); err != nil && ctx.Err() == nil {
			log.Error("static site", "dir", dir, "err", err)
		}
	}
	build()
	go func() {
		defer close(done)
		t := time.NewTicker(staticEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				build()
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
