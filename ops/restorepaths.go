package ops

import (
	"path/filepath"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// absDataDir is the data_dir of a configuration when it is absolute (a
// backup whose manifest does not name its data folder).
func absDataDir(text []byte) string {
	var v struct {
		DataDir string `toml:"data_dir"`
	}
	if _, err := toml.Decode(string(text), &v); err != nil || !filepath.IsAbs(v.DataDir) {
		return ""
	}
	return filepath.Clean(v.DataDir)
}

// rewritePaths replaces, in TOML text, every one-line string value that
// is an absolute path inside oldDir by the path relative to it (every
// path of the configuration is taken from data_dir). Comments, layout
// and other values are kept. It returns the new text and the old paths.
func rewritePaths(text []byte, oldDir string) ([]byte, []string) {
	if oldDir == "" {
		return text, nil
	}
	var out []byte
	var old []string
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '#':
			j := i
			for j < len(text) && text[j] != '\n' {
				j++
			}
			out = append(out, text[i:j]...)
			i = j
		case c == '"' || c == '\'':
			if i+2 < len(text) && text[i+1] == c && text[i+2] == c {
				// A multi-line string is kept as it is.
				end := strings.Index(string(text[i+3:]), string([]byte{c, c, c}))
				j := len(text)
				if end >= 0 {
					j = i + 3 + end + 3
				}
				out = append(out, text[i:j]...)
				i = j
				continue
			}
			j := i + 1
			for j < len(text) && text[j] != c && text[j] != '\n' {
				if c == '"' && text[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(text) || text[j] != c {
				out = append(out, text[i:j]...)
				i = j
				continue
			}
			lit := string(text[i : j+1])
			val := lit[1 : len(lit)-1]
			if c == '"' {
				v, err := strconv.Unquote(lit)
				if err != nil {
					val = ""
				} else {
					val = v
				}
			}
			if q, ok := relPath(oldDir, val); ok {
				old = append(old, val)
				lit = q
			}
			out = append(out, lit...)
			i = j + 1
		default:
			out = append(out, c)
			i++
		}
	}
	return out, old
}

// relPath quotes p relative to dir when p is an absolute path inside dir.
func relPath(dir, p string) (string, bool) {
	if !filepath.IsAbs(p) {
		return "", false
	}
	p = filepath.Clean(p)
	rel := "."
	if p != dir {
		r, ok := under(dir, p)
		if !ok {
			return "", false
		}
		rel = filepath.FromSlash(r)
	}
	switch {
	case !strings.ContainsAny(rel, "\"\\") && printable(rel):
		return `"` + rel + `"`, true
	case !strings.Contains(rel, "'") && printable(rel):
		return "'" + rel + "'", true
	}
	return "", false
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
