package config

// Metrics configures the Prometheus endpoint (/metrics) and the health
// check (/healthz).
type Metrics struct {
	// Listen is the HTTP address; "" (the default) serves neither.
	Listen string
}

type rawMetrics struct {
	Listen *string `toml:"listen"`
}

func (c *Config) applyMetrics(r *raw, bad func(key, format string, args ...any) error) error {
	c.Metrics.Listen = str(r.Metrics.Listen, "")
	if c.Metrics.Listen == "" {
		return nil
	}
	if err := checkListen(c.Metrics.Listen); err != nil {
		return bad("metrics.listen", "%v; use HOST:PORT, e.g. \"127.0.0.1:9425\", or \"\" to serve no metrics", err)
	}
	for key, addr := range map[string]string{"smtp.listen": c.SMTP.Listen, "imap.listen": c.IMAP.Listen, "web.listen": c.Web.Listen} {
		if addr == c.Metrics.Listen {
			return bad("metrics.listen", "%q is also %s; give the metrics their own port", addr, key)
		}
	}
	return nil
}
