package config

import "time"

// Retention is how long cvd keeps what it no longer needs. Nothing of an
// incident that is not closed is ever purged, whatever the ages.
type Retention struct {
	// Spool is how long the raw message of routed mail stays in the spool
	// (the report itself stays, encrypted, in its incident's archive); 0
	// keeps it forever.
	Spool time.Duration
	// Delivered is how long the body of a delivered message that no
	// archive or IMAP mailbox needs (an announcement's copy to each
	// subscriber) stays in the queue; 0 keeps it forever.
	Delivered time.Duration
}

type rawRetention struct {
	Spool     *age `toml:"spool"`
	Delivered *age `toml:"delivered"`
}

func init() { keys = append(keys, "retention", "retention.spool", "retention.delivered") }

func (c *Config) applyRetention(r *rawRetention, bad func(key, format string, args ...any) error) error {
	get := func(key string, p *age) (time.Duration, error) {
		d := 30 * 24 * time.Hour
		if p != nil {
			d = time.Duration(*p)
		}
		if d != 0 && d < 24*time.Hour {
			return 0, bad(key, "%v is too short; use at least \"1d\", or \"0d\" to keep everything (default \"30d\")", d)
		}
		return d, nil
	}
	var err error
	if c.Retention.Spool, err = get("retention.spool", r.Spool); err != nil {
		return err
	}
	c.Retention.Delivered, err = get("retention.delivered", r.Delivered)
	return err
}

// DefaultText is the embedded default configuration.
func DefaultText() []byte { return defaultTOML }
