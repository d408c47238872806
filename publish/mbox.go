package publish

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"
)

// MboxMessage is one message of an mbox file.
type MboxMessage struct {
	// From is the envelope sender on the "From " line; "MAILER-DAEMON"
	// when empty.
	From string
	// Date is the time on the "From " line.
	Date time.Time
	// Raw is the message, CRLF or LF line endings.
	Raw []byte
}

// WriteMbox writes msgs as an mboxrd file: each message starts with a
// "From " line, its lines end in LF, every line that starts with any
// number of '>' and "From " gets one more '>', and a blank line ends it.
// Readers undo the quoting exactly, so signed messages still verify.
func WriteMbox(w io.Writer, msgs []MboxMessage) error {
	bw := bufio.NewWriter(w)
	for _, m := range msgs {
		from := strings.Map(func(r rune) rune {
			if r <= ' ' || r == 0x7f {
				return -1
			}
			return r
		}, m.From)
		if from == "" {
			from = "MAILER-DAEMON"
		}
		fmt.Fprintf(bw, "From %s %s\n", from, m.Date.UTC().Format("Mon Jan _2 15:04:05 2006"))
		raw := bytes.ReplaceAll(m.Raw, []byte("\r\n"), []byte("\n"))
		for len(raw) > 0 {
			line := raw
			if i := bytes.IndexByte(raw, '\n'); i >= 0 {
				line, raw = raw[:i+1], raw[i+1:]
			} else {
				raw = nil
			}
			if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
				bw.WriteByte('>')
			}
			bw.Write(line)
			if line[len(line)-1] != '\n' {
				bw.WriteByte('\n')
			}
		}
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write mbox: %w", err)
	}
	return nil
}
