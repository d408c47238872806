// Package embargo owns incidents: their lifecycle from report to release,
// their deadlines, the scheduler and the release of announcements.
package embargo
