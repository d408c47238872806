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

// blank reports whether an entity's text content is empty once keywords
// are stripped: a single text part with nothing but white space.
func blank(ent []byte) bool {
	head, body := splitEntity(ent)
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		return false
	}
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if h.Get("Content-Type") != "" && mt != "text/plain" {
		return false
	}
	text, err := decodeTransfer(h.Get("Content-Transfer-Encoding"), body)
	return err == nil && len(bytes.TrimSpace(text)) == 0
}
