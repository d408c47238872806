package main

import (
	"context"
	"fmt"

	"github.com/cvd-project/cvd/config"
	"github.com/cvd-project/cvd/store"
)

// openDB loads the configuration and opens its database for an admin
// command; it works while the server runs. With mustExist, a missing
// database is an error (a typo'd --config should not create one).
func openDB(ctx context.Context, cfgPath string, mustExist bool) (*config.Config, *store.DB, error) {
	c, err := loadConfig(cfgPath)
	if err != nil {
		return nil, nil, err
	}
	if mustExist && !exists(c.Database) {
		return nil, nil, fmt.Errorf("no database at %s (has 'cvd serve' run with this configuration?)", c.Database)
	}
	db, err := store.Open(ctx, c.Database)
	if err != nil {
		return nil, nil, err
	}
	return c, db, nil
}
