// Package webhook posts signed JSON events to the HTTP endpoints an
// operator configured (a chat bridge, an IRC bot, a blog build). Each
// event is queued durably in the store and posted by a worker with
// retries, like mail.
//
// A request carries the event as its JSON body and three headers:
// Cvd-Event (the event's ID, the same on every attempt), Cvd-Timestamp
// (Unix seconds of this attempt) and Cvd-Signature ("sha256=" and the hex
// HMAC-SHA256, keyed with the endpoint's secret, of the timestamp, a
// ".", and the body). A receiver recomputes the MAC, refuses timestamps
// outside a few minutes of its clock, and drops event IDs it has seen:
// a captured request cannot be replayed later, nor its body changed.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The request headers.
const (
	HeaderEvent     = "Cvd-Event"
	HeaderTimestamp = "Cvd-Timestamp"
	HeaderSignature = "Cvd-Signature"
)

// DefaultWindow is how far a timestamp may be from the receiver's clock.
const DefaultWindow = 5 * time.Minute

// Sign returns the Cvd-Signature value of body posted at ts.
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a request's signature and that its timestamp lies within
// window of now (DefaultWindow when 0). Replays within the window are the
// receiver's to drop, by the event ID.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, window time.Duration) error {
	if window <= 0 {
		window = DefaultWindow
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(timestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("%s %q is not Unix seconds", HeaderTimestamp, timestamp)
	}
	want := Sign(secret, ts, body)
	if !hmac.Equal([]byte(want), []byte(strings.TrimSpace(signature))) {
		return errors.New("signature mismatch")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > window || d < -window {
		return fmt.Errorf("timestamp %s is %s away from now", timestamp, d.Round(time.Second))
	}
	return nil
}
