package config

import (
	"net/url"
	"time"
)

// Intake is the intake policy: who gets automatic mail from
// security@DOMAIN, and the limits on new reports that open an incident
// (the others wait in the triage queue).
type Intake struct {
	// AcknowledgeUnauthenticated sends automatic replies also to senders
	// that did not authenticate (true in the embedded default only).
	AcknowledgeUnauthenticated bool
	// PerSender and PerNetwork are how many reports from one sender and
	// from one source network open an incident per Window (0: no limit).
	PerSender  int
	PerNetwork int
	Window     time.Duration
	// IPv4Prefix and IPv6Prefix size a source network.
	IPv4Prefix int
	IPv6Prefix int
	// DigestEvery is the least time between two triage digests.
	DigestEvery time.Duration
}

// Spam configures spam scoring of new reports by rspamd.
type Spam struct {
	// RspamdURL is the base URL of an rspamd worker ("" for none).
	RspamdURL string
	// Threshold is the score from which a report goes to triage.
	Threshold float64
	Timeout   time.Duration
}

type rawIntake struct {
	AcknowledgeUnauthenticated *bool `toml:"acknowledge_unauthenticated"`
	PerSender                  *int  `toml:"per_sender"`
	PerNetwork                 *int  `toml:"per_network"`
	Window                     *age  `toml:"window"`
	IPv4Prefix                 *int  `toml:"ipv4_prefix"`
	IPv6Prefix                 *int  `toml:"ipv6_prefix"`
	DigestEvery                *age  `toml:"digest_every"`
}

type rawSpam struct {
	RspamdURL *string        `toml:"rspamd_url"`
	Threshold *float64       `toml:"threshold"`
	Timeout   *time.Duration `toml:"timeout"`
}

func (c *Config) applyIntake(r *raw, bad func(key, format string, args ...any) error) error {
	in, ri := &c.Intake, &r.Intake
	count := func(key string, p *int, def int) (int, error) {
		if p == nil {
			return def, nil
		}
		if *p < 0 {
			return 0, bad(key, "%d is negative; use a count (0 for no limit, default %d)", *p, def)
		}
		return *p, nil
	}
	var err error
	if in.PerSender, err = count("intake.per_sender", ri.PerSender, 3); err != nil {
		return err
	}
	if in.PerNetwork, err = count("intake.per_network", ri.PerNetwork, 10); err != nil {
		return err
	}
	in.Window = time.Hour
	if ri.Window != nil {
		in.Window = time.Duration(*ri.Window)
	}
	if in.Window < time.Minute || in.Window > 7*24*time.Hour {
		return bad("intake.window", "%v is out of range; use between \"1m\" and \"7d\" (default \"1h\")", in.Window)
	}
	in.IPv4Prefix, in.IPv6Prefix = 24, 64
	if ri.IPv4Prefix != nil {
		in.IPv4Prefix = *ri.IPv4Prefix
	}
	if in.IPv4Prefix < 8 || in.IPv4Prefix > 32 {
		return bad("intake.ipv4_prefix", "%d is out of range; use between 8 and 32 (default 24)", in.IPv4Prefix)
	}
	if ri.IPv6Prefix != nil {
		in.IPv6Prefix = *ri.IPv6Prefix
	}
	if in.IPv6Prefix < 16 || in.IPv6Prefix > 128 {
		return bad("intake.ipv6_prefix", "%d is out of range; use between 16 and 128 (default 64)", in.IPv6Prefix)
	}
	in.DigestEvery = time.Hour
	if ri.DigestEvery != nil {
		in.DigestEvery = time.Duration(*ri.DigestEvery)
	}
	if in.DigestEvery < time.Minute || in.DigestEvery > 7*24*time.Hour {
		return bad("intake.digest_every", "%v is out of range; use between \"1m\" and \"7d\" (default \"1h\")", in.DigestEvery)
	}

	sp, rs := &c.Spam, &r.Spam
	sp.RspamdURL = str(rs.RspamdURL, "")
	if sp.RspamdURL != "" {
		if u, err := url.Parse(sp.RspamdURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("spam.rspamd_url", "%q is not an http(s) URL; use rspamd's normal worker, e.g. \"http://127.0.0.1:11333\", or \"\" for none", sp.RspamdURL)
		}
	}
	sp.Threshold = 6
	if rs.Threshold != nil {
		sp.Threshold = *rs.Threshold
	}
	if sp.Threshold <= 0 {
		return bad("spam.threshold", "%v must be above 0 (default 6, rspamd's \"add header\" score)", sp.Threshold)
	}
	sp.Timeout = 10 * time.Second
	if rs.Timeout != nil {
		sp.Timeout = *rs.Timeout
	}
	if sp.Timeout < 100*time.Millisecond || sp.Timeout > time.Minute {
		return bad("spam.timeout", "%v is out of range; use between \"100ms\" and \"1m\" (default \"10s\")", sp.Timeout)
	}
	return nil
}
