package embargo

import (
	"fmt"
	"strings"
	"time"
)

// ParseDate reads a public date. A date without a zone is refused: the
// embargo is always stated in UTC (or with an explicit offset).
func ParseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	u := strings.ToUpper(s)
	u = strings.TrimSuffix(u, " UTC")
	if strings.HasSuffix(strings.ToUpper(s), " UTC") {
		u += "Z"
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00", "2006-01-02 15:04Z07:00", "2006-01-02 15:04:05Z07:00"} {
		if t, err := time.Parse(layout, u); err == nil {
			return t.UTC().Truncate(time.Minute), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date with a time zone; write it in UTC like 2026-12-03T14:00Z", s)
}

// weekdayOK reports whether t falls Monday to Thursday (UTC): a release on
// a Friday or at the weekend leaves users without their distributions'
// updates until Monday.
func weekdayOK(t time.Time) bool {
	switch t.UTC().Weekday() {
	case time.Friday, time.Saturday, time.Sunday:
		return false
	}
	return true
}

// Propose returns the earliest compliant public date after notice sent at
// now: at least MinNotice ahead, Monday to Thursday, at ReleaseHour UTC.
func (p Policy) Propose(now time.Time) time.Time {
	earliest := now.UTC().Add(p.MinNotice)
	t := time.Date(earliest.Year(), earliest.Month(), earliest.Day(), p.ReleaseHour, 0, 0, 0, time.UTC)
	for t.Before(earliest) || !weekdayOK(t) {
		t = t.AddDate(0, 0, 1)
	}
	return t
}

// check tests a public date against the rules for the first downstream
// notice given at firstNotice (zero: not yet), with notice of this date
// given at now. override
// is the recorded reason for exceeding the maximum embargo. It returns a
// refusal naming the rule and a compliant date, and warnings.
func (p Policy) check(date, now, firstNotice time.Time, override string) (warnings []string, err error) {
	if !date.After(now) {
		return nil, refuse("the public date %s is not in the future (now %s); to publish at once, use publish with --now and a reason",
			utc(date), utc(now))
	}
	if date.Sub(now) < p.MinNotice {
		return nil, refuse("the public date %s is less than %s after the notice sent now (%s): downstreams need at least %s; the earliest compliant date is %s",
			utc(date), human(p.MinNotice), utc(now), human(p.MinNotice), utc(p.Propose(now)))
	}
	// Before the first notice the maximum is checked when it is sent.
	if !firstNotice.IsZero() && date.Sub(firstNotice) > p.MaxEmbargo {
		if strings.TrimSpace(override) == "" {
			return nil, refuse("the public date %s is more than %s after the first downstream notice (%s): the latest date is %s; to exceed it, give a reason (override)",
				utc(date), human(p.MaxEmbargo), utc(firstNotice), utc(firstNotice.Add(p.MaxEmbargo)))
		}
		warnings = append(warnings, fmt.Sprintf("the embargo exceeds %s on purpose: %s", human(p.MaxEmbargo), override))
	}
	if !weekdayOK(date) {
		warnings = append(warnings, fmt.Sprintf("%s is a %s; Monday to Thursday is better for users (e.g. %s)",
			utc(date), date.UTC().Weekday(), utc(p.Propose(now))))
	}
	return warnings, nil
}

// human writes a duration in days or hours.
func human(d time.Duration) string {
	if d >= 72*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	if d%time.Hour == 0 {
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	}
	return d.String()
}
