package lists

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// splitEntity splits a MIME entity into its header bytes (with the blank
// line) and body.
func splitEntity(ent []byte) (head, body []byte) {
	if i := bytes.Index(ent, []byte("\r\n\r\n")); i >= 0 {
		return ent[:i+4], ent[i+4:]
	}
	return ent, nil
}

// stripKeywords finds keyword lines at the start of the entity's first
// text/plain part (the entity itself, or the first part of a multipart,
// recursively) and returns them with the entity rewritten without them.
// Without keywords the entity is returned unchanged.
func stripKeywords(ent []byte, depth int) ([]Keyword, []byte) {
	if depth > 4 {
		return nil, ent
	}
	head, body := splitEntity(ent)
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return nil, ent
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if h.Get("Content-Type") == "" {
		mt, err = "text/plain", nil
	}
	if err != nil {
		return nil, ent
	}
	switch {
	case mt == "text/plain":
		text, err := decodeTransfer(h.Get("Content-Transfer-Encoding"), body)
		if err != nil {
			return nil, ent
		}
		kws, rest := ParseKeywords(strings.ReplaceAll(string(text), "\r\n", "\n"))
		if kws == nil {
			return nil, ent
		}
		var out bytes.Buffer
		for f := h.Fields(); f.Next(); {
			if strings.EqualFold(f.Key(), "Content-Transfer-Encoding") {
				continue
			}
			raw, err := f.Raw()
			if err != nil {
				return nil, ent
			}
			out.Write(raw)
		}
		out.WriteString("Content-Transfer-Encoding: 8bit\r\n\r\n")
		out.WriteString(strings.ReplaceAll(rest, "\n", "\r\n"))
		return kws, out.Bytes()
	case strings.HasPrefix(mt, "multipart/") && params["boundary"] != "":
		delim := []byte("--" + params["boundary"])
		start := 0
		if !bytes.HasPrefix(body, delim) {
			i := bytes.Index(body, append([]byte("\r\n"), delim...))
			if i < 0 {
				return nil, ent
			}
			start = i + 2
		}
		partStart := start + len(delim)
		if !bytes.HasPrefix(body[partStart:], []byte("\r\n")) {
			return nil, ent
		}
		partStart += 2
		end := bytes.Index(body[partStart:], append([]byte("\r\n"), delim...))
		if end < 0 {
			return nil, ent
		}
		part := body[partStart : partStart+end]
		kws, newPart := stripKeywords(part, depth+1)
		if kws == nil {
			return nil, ent
		}
		newPart = bytes.TrimSuffix(newPart, []byte("\r\n"))
		var out bytes.Buffer
		out.Write(head)
		out.Write(body[:partStart])
		out.Write(newPart)
		out.Write(body[partStart+end:])
		return kws, out.Bytes()
	}
	return nil, ent
}

func decodeTransfer(cte string, body []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		return io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
	case "base64":
		return io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(bytes.Join(bytes.Fields(body), nil))))
	default:
		return body, nil
	}
}

// blank reports whether an entity's content is empty once keywords are
// stripped: text parts with nothing but white space, and multiparts made
// only of such parts (a mail client's wrapper around the text, or the
// legacy display of protected header fields, RFC 9788).
func blank(ent []byte) bool {
	return blankAt(ent, 0)
}

func blankAt(ent []byte, depth int) bool {
	if depth > 4 {
		return false
	}
	head, body := splitEntity(ent)
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return false
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	switch {
	case h.Get("Content-Type") == "":
		mt = "text/plain"
	case err != nil:
		return false
	}
	if strings.EqualFold(h.Get("Content-Disposition"), "attachment") || strings.HasPrefix(strings.ToLower(h.Get("Content-Disposition")), "attachment;") {
		return false
	}
	switch {
	case mt == "text/rfc822-headers":
		// The legacy display of protected header fields: not content.
		return true
	case mt == "text/plain":
		text, err := decodeTransfer(h.Get("Content-Transfer-Encoding"), body)
		return err == nil && len(bytes.TrimSpace(text)) == 0
	case strings.HasPrefix(mt, "multipart/") && params["boundary"] != "":
		parts, ok := splitParts(body, params["boundary"])
		if !ok {
			return false
		}
		for _, p := range parts {
			if !blankAt(p, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// splitParts returns the body parts of a multipart body.
func splitParts(body []byte, boundary string) ([][]byte, bool) {
	delim := []byte("--" + boundary)
	var parts [][]byte
	rest := body
	if !bytes.HasPrefix(rest, delim) {
		i := bytes.Index(rest, append([]byte("\r\n"), delim...))
		if i < 0 {
			return nil, false
		}
		rest = rest[i+2:]
	}
	for {
		rest = rest[len(delim):]
		if bytes.HasPrefix(rest, []byte("--")) {
			return parts, true
		}
		if !bytes.HasPrefix(rest, []byte("\r\n")) {
			return nil, false
		}
		rest = rest[2:]
		end := bytes.Index(rest, append([]byte("\r\n"), delim...))
		if end < 0 {
			return nil, false
		}
		parts = append(parts, rest[:end])
		rest = rest[end+2:]
	}
}
